"""jaxpr_gan.storage and orbax_storage on a local folder, gs:// and s3:// (local test servers:
tests/storage_servers.py), and storage_check's one-line errors for a store that cannot be used."""

import os
import socket
import time

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorstore as ts

from jaxpr_gan import orbax_storage
from jaxpr_gan import storage
from jaxpr_gan import storage_check

pytest_plugins = ('tests.storage_servers',)  # the fixtures storage_servers and store


def _closed_port() -> int:
  with socket.socket() as s:  # bound, never listening, then closed: connections are refused
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_read_write_list(store):
  storage.makedirs(storage.join(store, 'a', 'b'))
  storage.write_bytes(storage.join(store, 'a/b/x.bin'), b'\x00\x01')
  storage.write_text(storage.join(store, 'a', 'y.json'), '{"é": 1}')
  storage.write_text(storage.join(store, 'a', 'y.json'), '{"é": 2}')  # replaced whole
  assert storage.read_bytes(storage.join(store, 'a/b/x.bin')) == b'\x00\x01'
  assert storage.read_text(storage.join(store, 'a/y.json')) == '{"é": 2}'
  assert storage.exists(storage.join(store, 'a/y.json'))
  assert storage.exists(storage.join(store, 'a'))
  assert storage.isdir(storage.join(store, 'a/b'))
  assert not storage.isdir(storage.join(store, 'a/y.json'))
  assert not storage.exists(storage.join(store, 'nothing'))
  assert storage.listdir(storage.join(store, 'a')) == ['b', 'y.json']
  with pytest.raises(FileNotFoundError):
    storage.read_bytes(storage.join(store, 'nothing'))
  storage.remove(storage.join(store, 'a/y.json'))
  storage.remove(storage.join(store, 'a/y.json'))  # absent: nothing
  assert storage.listdir(storage.join(store, 'a')) == ['b']
  storage.rmtree(storage.join(store, 'a'))
  storage.rmtree(storage.join(store, 'a'))
  assert not storage.exists(storage.join(store, 'a/b/x.bin'))
  assert not storage.exists(storage.join(store, 'a'))


def test_create_exclusive_refuses_a_second_create(store):
  storage.makedirs(store)
  lock = storage.join(store, 'LOCK')
  assert storage.create_exclusive(lock, b'first')
  assert not storage.create_exclusive(lock, b'second')
  assert storage.read_bytes(lock) == b'first'
  storage.remove(lock)
  assert storage.create_exclusive(lock, b'third')


def test_put_and_get_folder_skip_files_of_equal_size(store, tmp_path):
  src = tmp_path / 'src'
  (src / 'sub').mkdir(parents=True)
  (src / 'a.txt').write_bytes(b'aaa')
  (src / 'sub' / 'b.bin').write_bytes(b'b' * 1000)
  remote = storage.join(store, 'mirror')
  assert storage.put_folder(str(src), remote) == ['a.txt', 'sub/b.bin']
  assert storage.put_folder(str(src), remote) == []  # nothing changed
  (src / 'a.txt').write_bytes(b'aaaa')  # grew, as an event file does
  assert storage.put_folder(str(src), remote) == ['a.txt']
  assert storage.read_bytes(storage.join(remote, 'sub/b.bin')) == b'b' * 1000

  cache = tmp_path / 'cache'
  assert storage.get_folder(remote, str(cache)) == ['a.txt', 'sub/b.bin']
  assert (cache / 'a.txt').read_bytes() == b'aaaa'
  assert (cache / 'sub' / 'b.bin').read_bytes() == b'b' * 1000
  before = os.stat(cache / 'sub' / 'b.bin').st_mtime_ns
  time.sleep(0.01)
  (cache / 'a.txt').write_bytes(b'x')  # a truncated copy is fetched again
  assert storage.get_folder(remote, str(cache)) == ['a.txt']
  assert os.stat(cache / 'sub' / 'b.bin').st_mtime_ns == before
  assert (cache / 'a.txt').read_bytes() == b'aaaa'
  assert not [n for n in os.listdir(cache) if '.tmp-' in n]
  with pytest.raises(FileNotFoundError):
    storage.get_folder(storage.join(store, 'nothing'), str(cache))


def test_tensorstore_kvstore(store):
  spec = {
    'driver': 'zarr',
    'kvstore': orbax_storage.tensorstore_kvstore(storage.join(store, 'arr') + '/'),
    'metadata': {'shape': [4, 4], 'chunks': [2, 2], 'dtype': '<f4'},
  }
  values = np.arange(16, dtype=np.float32).reshape(4, 4)
  ts.open(spec, create=True, delete_existing=True).result().write(values).result()
  reopened = ts.open({'driver': 'zarr', 'kvstore': spec['kvstore']}).result()
  np.testing.assert_array_equal(reopened.read().result(), values)
  assert storage.exists(storage.join(store, 'arr/.zarray'))


@pytest.mark.parametrize('protocol', ['gs', 's3'])
def test_orbax_checkpoint_manager(storage_servers, protocol):
  """gs:// as orbax is, s3:// through enable_orbax_s3; both with COMMIT_FILE: old steps are
  deleted, and a step without its commit_success.txt is not a checkpoint."""
  if protocol == 's3':
    orbax_storage.enable_orbax_s3()
  directory = f'{storage_servers[protocol]}/orbax-{os.urandom(4).hex()}/checkpoints'
  options = ocp.CheckpointManagerOptions(
    max_to_keep=2, create=True, atomicity_options=orbax_storage.atomicity_options(directory)
  )
  tree = {'w': jnp.arange(6.0).reshape(2, 3), 'step': jnp.array(7)}
  with ocp.CheckpointManager(directory, options=options) as manager:
    for step in (1, 2, 3):
      manager.save(step, args=ocp.args.StandardSave({k: v + step for k, v in tree.items()}))
    manager.wait_until_finished()
    assert manager.all_steps() == [2, 3]
  assert storage.listdir(directory) == ['2', '3']
  storage.remove(storage.join(directory, '3', 'commit_success.txt'))  # as if killed before it
  with ocp.CheckpointManager(directory, options=options) as manager:
    assert manager.latest_step() == 2
    restored = manager.restore(2, args=ocp.args.StandardRestore(tree))
  np.testing.assert_array_equal(restored['w'], np.arange(6.0).reshape(2, 3) + 2)
  assert int(restored['step']) == 9


def test_check_reachable_passes_on_a_live_store(store):
  storage_check.check_reachable(store)


@pytest.mark.parametrize(
  'protocol, variable', [('gs', 'STORAGE_EMULATOR_HOST'), ('s3', 'AWS_ENDPOINT_URL')]
)
def test_unreachable_endpoint_is_one_line(storage_servers, monkeypatch, protocol, variable):
  monkeypatch.setenv(variable, f'http://127.0.0.1:{_closed_port()}')  # nothing listens there
  url = f'{storage_servers[protocol]}/run'
  start = time.monotonic()
  with pytest.raises(storage_check.StorageUnreachable) as e:
    storage_check.check_reachable(url)
  assert time.monotonic() - start < 5
  assert '\n' not in str(e.value) and url in str(e.value) and variable in str(e.value)


@pytest.mark.parametrize('protocol', ['gs', 's3'])
def test_missing_bucket_is_one_line(storage_servers, protocol):
  url = f'{protocol}://no-such-bucket-here/run'
  start = time.monotonic()
  with pytest.raises(storage_check.BucketNotFound) as e:
    storage_check.check_reachable(url)
  assert time.monotonic() - start < 5
  assert '\n' not in str(e.value) and 'bucket no-such-bucket-here does not exist' in str(e.value)


@pytest.mark.parametrize('protocol', ['gs', 's3'])
def test_dns_failure_is_one_line(storage_servers, monkeypatch, protocol):
  variable = {'gs': 'STORAGE_EMULATOR_HOST', 's3': 'AWS_ENDPOINT_URL'}[protocol]
  monkeypatch.setenv(variable, 'http://no-such-host.invalid:9000')
  with pytest.raises(storage_check.StorageUnreachable, match='unknown host name') as e:
    storage_check.check_reachable(f'{protocol}://bucket/run')
  assert variable in str(e.value)


def test_refused_credentials_are_one_line(storage_servers, monkeypatch):
  from moto import settings  # noqa: PLC0415

  monkeypatch.setattr(settings, 'INITIAL_NO_AUTH_ACTION_COUNT', 0)  # moto checks keys from now
  url = f'{storage_servers["s3"]}/run'
  with pytest.raises(storage_check.AccessDenied) as e:
    storage_check.check_reachable(url)
  message = str(e.value)
  assert '\n' not in message and url in message and 'AWS_ACCESS_KEY_ID' in message


def test_refused_google_credentials_are_one_line(storage_servers, monkeypatch):
  async def forbidden(*_):  # what gcsfs raises for a 403 (the test server checks no tokens)
    raise OSError('Forbidden: b/bucket/o\nno storage.objects.list access')

  monkeypatch.setattr(storage_check, '_list_one', forbidden)
  with pytest.raises(storage_check.AccessDenied) as e:
    storage_check.check_reachable(f'{storage_servers["gs"]}/run')
  assert '\n' not in str(e.value) and 'GOOGLE_APPLICATION_CREDENTIALS' in str(e.value)


def test_enable_orbax_s3_refuses_an_orbax_without_its_names(monkeypatch):
  from orbax.checkpoint._src.serialization import tensorstore_utils  # noqa: PLC0415

  monkeypatch.setattr(orbax_storage, '_enabled', False)
  monkeypatch.delattr(tensorstore_utils, '_use_gcs_driver')
  with pytest.raises(RuntimeError, match='_use_gcs_driver.*update it'):
    orbax_storage.enable_orbax_s3()
