"""Runs whose workdir is gs:// or s3:// (local test servers: tests/storage_servers.py).

A tiny StarGAN run trained in the bucket by train.py, SIGKILLed once checkpoint 2 is committed and
rerun to the end, equals an uninterrupted run bit for bit; the rerun takes over the dead run's
lock; evaluation and export read the bucket run; the lock, the atomic writers and the one-line
errors of a store that cannot be used, each on both stores.
"""

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import stargan as stargan_config
from input_pipeline import prepare
from jaxpr_gan import checkpointing
from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan import images
from jaxpr_gan import registry
from jaxpr_gan import storage
from jaxpr_gan import storage_check
from jaxpr_gan import workdir_lock
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.tools import edit
from jaxpr_gan.tools import export
from jaxpr_gan.training import loop
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib
from tests import conftest

pytest_plugins = ('tests.storage_servers',)  # the fixtures storage_servers and store

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TIMEOUT_S = 600
# train.py whose save of step 4 never starts: the process is surely alive, step 2 committed and
# step 4 not saved when the test kills it.
_HELD_TRAIN = """
import sys, time
sys.argv = ['train.py'] + sys.argv[1:]
import train
from jaxpr_gan import checkpointing, cli
save = checkpointing.Checkpointer.save
def held(self, step, *args, **kwargs):
  if step == 4:
    time.sleep(600)
  return save(self, step, *args, **kwargs)
checkpointing.Checkpointer.save = held
cli.run(train.main)
"""


@pytest.fixture(scope='module')
def env(storage_servers, tmp_path_factory):
  """The servers' environment, and a TensorBoard cache of the test's own (children too)."""
  patch = pytest.MonkeyPatch()
  patch.setenv('JAXPR_GAN_TENSORBOARD_CACHE', str(tmp_path_factory.mktemp('tensorboard')))
  patch.setenv('JAXPR_GAN_DATA_CACHE', str(tmp_path_factory.mktemp('data_cache')))
  yield storage_servers
  patch.undo()


def _config(data: str):
  """StarGAN tiny on the synthetic faces as prepared ArrayRecord shards in `data`."""
  config = stargan_config.get_config('tiny')
  config.data.update(source='array_record', array_record_dir=data)
  return config


def _train(workdir: str, data: str = '', held: bool = False, **environ) -> subprocess.Popen:
  args = ['-c', _HELD_TRAIN] if held else [os.path.join(_ROOT, 'train.py')]
  data_flags = (
    ['--config.data.source=array_record', f'--config.data.array_record_dir={data}'] if data else []
  )
  return subprocess.Popen(
    [
      sys.executable,
      *args,
      '--config',
      'configs/stargan.py:tiny',
      '--workdir',
      workdir,
      *data_flags,
    ],  # fmt: skip
    cwd=_ROOT,
    env=dict(conftest.subprocess_env(device_count=8), **environ),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def _finish(proc: subprocess.Popen) -> str:
  try:
    out, _ = proc.communicate(timeout=_TIMEOUT_S)
  except subprocess.TimeoutExpired:
    proc.kill()
    out, _ = proc.communicate()
  return out


@functools.cache
def _template():
  config = stargan_config.get_config('tiny')
  return jax.eval_shape(functools.partial(state_lib.init_state, registry.build(config, 5), config))


def _final(workdir: str):
  ckpt = checkpointing.Checkpointer(workdir)
  steps = ckpt.all_steps()
  state, iter_state = ckpt.restore(steps[-1], _template())
  ckpt.close()
  return steps, jax.device_get(state), iter_state


@pytest.fixture(scope='module')
def prepared(tmp_path_factory) -> str:
  """The tiny config's synthetic faces prepared as ArrayRecord shards on a local disk."""
  out = str(tmp_path_factory.mktemp('prepared') / 'faces')
  prepare.prepare(stargan_config.get_config('tiny'), out, workers=1)
  return out


@pytest.fixture(scope='module')
def reference(tmp_path_factory, prepared):
  """The uninterrupted run, in this process, its workdir and data on a local disk."""
  workdir = str(tmp_path_factory.mktemp('bucket_runs') / 'uninterrupted')
  loop.train(_config(prepared), workdir)
  return _final(workdir)


def _assert_bitwise_equal(got, want):
  (steps, state, iters), (want_steps, want_state, want_iters) = got, want
  assert steps == want_steps and iters == want_iters
  pairs = zip(jax.tree_util.tree_leaves_with_path(state), jax.tree.leaves(want_state))
  for (path, x), y in pairs:
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), jax.tree_util.keystr(path)


# On s3:// (orbax through its patch, the data through the local cache); gs:// runs the 2-process
# training of tests/test_multihost.py and orbax's saves in tests/test_storage.py.
@pytest.mark.parametrize('where', ['s3'])
def test_killed_bucket_run_resumes_bitwise_then_evaluates_and_exports(
  env, prepared, reference, where, tmp_path
):
  """Workdir and prepared data in the bucket (gs:// read in place, s3:// through the cache)."""
  workdir = f'{env[where]}/run-{where}-{os.getpid()}'
  data = f'{env[where]}/faces-{where}-{os.getpid()}'
  storage.put_folder(prepared, data)
  lock = storage.join(workdir, workdir_lock.LOCK_FILE)
  first = _train(workdir, data, held=True)
  committed = storage.join(workdir, 'checkpoints/2/commit_success.txt')
  deadline = time.monotonic() + _TIMEOUT_S
  while not storage.exists(committed):
    assert first.poll() is None and time.monotonic() < deadline, _finish(first)[-3000:]
    time.sleep(0.05)
  os.kill(first.pid, signal.SIGKILL)
  _finish(first)
  assert json.loads(storage.read_text(lock))['pid'] == first.pid  # left by the killed run

  out = _finish(rerun := _train(workdir, data))
  assert rerun.returncode == 0, out[-3000:]
  assert 'Taking over the workdir lock of pid' in out and 'Resumed from' in out, out[-3000:]
  assert 'at step 2.' in out
  assert not storage.exists(lock)  # released at the end
  _assert_bitwise_equal(_final(workdir), reference)
  assert storage.exists(storage.join(workdir, 'run.json'))
  assert storage.exists(storage.join(workdir, 'samples/step_0000004.png'))
  events = [n for n in storage.listdir(workdir) if n.startswith('events.out.tfevents')]
  assert len(events) >= 2  # both runs' events, mirrored

  report = evaluate.evaluate(workdir)
  metrics = json.loads(storage.read_text(storage.join(workdir, 'eval/metrics.json')))
  assert metrics['step'] == 4 and metrics['config_hash'] == report['config_hash']
  assert metrics['config']['data']['array_record_dir'] == data
  assert storage.exists(storage.join(workdir, 'eval/report.html'))
  assert len([n for n in storage.listdir(workdir) if n.startswith('events.out')]) > len(events)

  out_file = str(tmp_path / 'model.jaxgen')
  meta = export.export_run(workdir, out_file)
  assert meta['source'] == {'workdir': workdir, 'step': 4} and os.path.getsize(out_file) > 0
  # edit reads the run from the bucket and writes beside the photo's folder as usual.
  photo = str(tmp_path / 'face.png')
  images.save_png(photo, np.full((20, 20, 3), 128, np.uint8))
  model = edit.load_model(workdir)
  written, failed = edit.edit(
    model, [photo], str(tmp_path / 'edited'), edit.Request(('happy',)), progress=False
  )
  assert not failed and sorted(map(os.path.basename, written)) == [
    'face_happy.png',
    'face_strip.png',
  ]


def _closed_port() -> int:
  with socket.socket() as s:  # bound, never listening, then closed: connections are refused
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_unreachable_endpoint_is_one_line_before_any_work(env):
  proc = _train(f'{env["s3"]}/never', AWS_ENDPOINT_URL=f'http://127.0.0.1:{_closed_port()}')
  out = _finish(proc)
  assert proc.returncode == 2, out[-3000:]
  lines = [line for line in out.splitlines() if line.startswith('error:')]
  assert len(lines) == 1 and f'{env["s3"]}/never' in lines[0] and 'AWS_ENDPOINT_URL' in lines[0]
  assert 'Devices:' not in out  # nothing set up, let alone compiled


@pytest.mark.parametrize('where', ['gs', 's3'])
def test_missing_bucket_is_one_line_before_compiling(env, where, monkeypatch):
  def never(*args, **kwargs):
    raise AssertionError('compiled before the workdir was checked')

  monkeypatch.setattr(steps_lib, 'compile_steps', never)
  url = f'{where}://no-such-bucket-{os.getpid()}/run'
  with pytest.raises(storage_check.BucketNotFound) as e:
    loop.train(stargan_config.get_config('tiny'), url)
  assert url in str(e.value) and '\n' not in str(e.value)


def _fake_holder(lock: str, **fields) -> dict:
  holder = dict(host='elsewhere', pid=4321, started='2026-01-01T00:00:00', command='train.py')
  holder = {'refreshed': time.time(), **holder, **fields}
  storage.write_text(lock, json.dumps(holder))
  return holder


@pytest.mark.parametrize('where', ['gs', 's3'])
def test_bucket_lock_in_use_lease_and_dead_holder(env, where, monkeypatch):
  workdir = f'{env[where]}/lock-{os.getpid()}'
  lock = storage.join(workdir, workdir_lock.LOCK_FILE)
  _fake_holder(lock)  # a live run on another host
  with pytest.raises(workdir_lock.WorkdirInUse) as e:
    with workdir_lock.held(workdir):
      pass
  assert str(e.value).startswith(f'{workdir} is in use by pid 4321 on host elsewhere (since ')
  assert isinstance(e.value, errors.UserError) and '\n' not in str(e.value)

  monkeypatch.setattr(workdir_lock, 'LEASE_S', 5.0)
  monkeypatch.setattr(workdir_lock, 'REFRESH_S', 0.05)
  stale = _fake_holder(lock, refreshed=time.time() - 60)  # its host stopped renewing it
  with workdir_lock.held(workdir) as held:
    assert held.previous == stale
    mine = json.loads(storage.read_text(lock))
    assert mine['pid'] == os.getpid() and mine['host'] != 'elsewhere'
    time.sleep(0.5)
    assert json.loads(storage.read_text(lock))['refreshed'] > mine['refreshed']  # renewed
  assert not storage.exists(lock)

  gone = _fake_holder(lock, host=os.uname().nodename, pid=_dead_pid(), refreshed=time.time())
  with workdir_lock.held(workdir) as held:
    assert held.previous == gone  # this host, its process gone: taken over at once
  assert not storage.exists(lock)


def _dead_pid() -> int:
  proc = subprocess.Popen(['true'])  # noqa: S607
  proc.wait()
  return proc.pid


def test_writers_and_folder_sets_on_each_store(store):
  storage.makedirs(store)
  files.write_json(storage.join(store, 'a.json'), {'x': float('nan')})
  assert json.loads(storage.read_text(storage.join(store, 'a.json'))) == {
    'x': None,
    'nonfinite': {'x': 'nan'},
  }
  images.save_png(storage.join(store, 'pics/p.png'), np.zeros((2, 2, 3), np.uint8), min_size=8)
  assert storage.read_bytes(storage.join(store, 'pics/p.png')).startswith(b'\x89PNG')
  out = storage.join(store, 'eval')
  for names in (('1.txt', 'old.txt'), ('1.txt', 'new.txt')):
    with files.atomic_folder(out) as tmp:
      for name in names:
        files.write_text(os.path.join(tmp, name), name)
  assert storage.listdir(out) == ['1.txt', 'new.txt']  # the previous set's extra file is gone
  files.make_writable_folder(out, 'the folder')


@pytest.mark.parametrize('where', ['gs', 's3'])
def test_damaged_step_is_copied_aside_on_a_bucket(env, where):
  workdir = f'{env[where]}/damaged-{os.getpid()}'
  ckpt = checkpointing.Checkpointer(workdir, async_save=False)
  ckpt.save(1, {'w': jnp.arange(3.0)}, None, {'note': 'x'})
  assert ckpt.all_steps() == [1]
  target = ckpt.move_aside(1)
  assert target == f'{workdir}/checkpoints/damaged/1' and ckpt.all_steps() == []
  assert storage.exists(storage.join(target, 'commit_success.txt'))
  assert not storage.exists(storage.join(workdir, 'checkpoints/1'))
  ckpt.close()
