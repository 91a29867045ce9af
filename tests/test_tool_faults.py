"""The edit and export tools when things go wrong: a file name that is not UTF-8, a bad
--batch_size or --out, an export killed while it writes, a damaged exported file."""

import io
import os
import pathlib
import signal
import subprocess
import sys
import zipfile

import numpy as np
from PIL import Image
import pytest

from configs import stargan as stargan_config
from jaxpr_gan import errors
from jaxpr_gan.evaluation import restore
from jaxpr_gan.tools import edit
from jaxpr_gan.tools import export
from tests import conftest
from tests import test_cli

ROOT = conftest.ROOT
_user_error = test_cli._user_error  # pylint: disable=protected-access


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """(workdir, exported file) of a randomly initialised tiny StarGAN run."""
  tmp = tmp_path_factory.mktemp('faults')
  workdir, path = str(tmp / 'run'), str(tmp / 'run.jaxgen')
  restore.write_run(stargan_config.get_config('tiny'), ['neutral', 'happy'], workdir, step=2)
  export.export_run(workdir, path)
  return workdir, path


def _tool(tool: str, *args: str, cwd) -> subprocess.CompletedProcess:
  """`python -m jaxpr_gan.tools.<tool> args` with stdout and stderr as bytes."""
  return subprocess.run(
    [sys.executable, '-m', f'jaxpr_gan.tools.{tool}', *args],
    cwd=str(cwd),
    env=conftest.subprocess_env(1),
    capture_output=True,
    timeout=300,
  )


def _as_text(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
  return subprocess.CompletedProcess(
    result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
  )


def test_edit_lists_a_non_utf8_name_in_failed_txt_with_its_own_bytes(run, tmp_path):
  photos = tmp_path / 'photos'
  photos.mkdir()
  Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(photos / 'good.png')
  bad = os.fsencode(photos) + b'/bad\xff.png'  # not valid UTF-8
  fd = os.open(bad, os.O_WRONLY | os.O_CREAT, 0o644)
  os.write(fd, b'not an image')
  os.close(fd)
  out = tmp_path / 'out'
  args = ['--model', run[1], '--input', str(photos), '--out', str(out), '--target', 'happy']
  result = _tool('edit', *args, cwd=tmp_path)
  assert result.returncode == 1, result.stderr[-2000:]
  assert b'Traceback' not in result.stderr
  assert b'1 of 2 images edited' in result.stdout
  assert b'skipped ' + os.fsencode(photos) + b'/bad\\xff.png' in result.stderr  # escaped
  lines = (out / 'failed.txt').read_bytes().splitlines()
  assert len(lines) == 1 and lines[0].startswith(bad + b': '), lines
  # Every write is atomic: no temporary file is left beside the results.
  assert sorted(os.listdir(out)) == ['failed.txt', 'good_happy.png', 'good_strip.png']
  with Image.open(out / 'good_happy.png') as result_image:
    assert result_image.size == (16, 16)


def test_edit_refuses_a_batch_size_below_one_and_an_out_it_cannot_make(run, tmp_path):
  Image.new('RGB', (8, 8)).save(tmp_path / 'face.png')
  for size in ('0', '-1'):
    result = _tool(
      'edit', '--model', run[1], '--input=face.png', '--out=o', f'--batch_size={size}', cwd=tmp_path
    )
    _user_error(_as_text(result), f'--batch_size {size}', '1 or more')
  assert not (tmp_path / 'o').exists()
  (tmp_path / 'blocker').write_text('a file in the way')
  # The model does not exist: the --out error coming first shows it is checked before loading.
  result = _tool('edit', '--model=nothing', '--input=face.png', '--out=blocker/o', cwd=tmp_path)
  _user_error(_as_text(result), '--out blocker/o', 'blocker is a file, not a folder')
  with pytest.raises(errors.BadInput, match='is a file, not a folder'):
    edit.check_args(str(tmp_path / 'blocker' / 'a' / 'b'), 8)
  edit.check_args(str(tmp_path / 'new' / 'deeper'), 1)  # missing folders are made later
  assert not (tmp_path / 'new').exists()


def test_export_checks_its_out_folder_before_restoring_the_run(run, tmp_path, monkeypatch):
  result = _tool('export', f'--workdir={run[0]}', '--out=missing/x.jaxgen', cwd=tmp_path)
  line = _user_error(_as_text(result), 'folder missing does not exist', 'mkdir -p missing')
  assert line.startswith('error: --out missing/x.jaxgen')
  assert not any(tmp_path.iterdir())

  def restored(*_):
    raise AssertionError('the run was restored before --out was checked')

  monkeypatch.setattr(export.restore_lib, 'restore', restored)
  with pytest.raises(errors.NotFound, match='does not exist; create it first'):
    export.export_run(run[0], str(tmp_path / 'missing' / 'x.jaxgen'))
  with pytest.raises(errors.BadInput, match='is a folder; give a file name'):
    export.export_run(run[0], str(tmp_path))
  (tmp_path / 'blocker').write_text('')
  with pytest.raises(errors.BadInput, match='blocker is a file, not a folder'):
    export.export_run(run[0], str(tmp_path / 'blocker' / 'x.jaxgen'))


_HALF_WRITTEN = """
import io, os, sys, time
import numpy as np
from jaxpr_gan.tools import export
real_savez = np.savez

def half_then_hang(f, **arrays):  # writes half the archive into export's file, then waits
  buf = io.BytesIO()
  real_savez(buf, **arrays)
  f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
  f.flush()
  print('writing', flush=True)
  time.sleep(300)

np.savez = half_then_hang
export.export_run(sys.argv[1], sys.argv[2])
"""


def test_an_export_killed_while_it_writes_leaves_the_previous_file(run, tmp_path):
  target = tmp_path / 'g.jaxgen'
  target.write_bytes(pathlib.Path(run[1]).read_bytes())
  before = target.read_bytes()
  log = tmp_path / 'child.log'
  with open(log, 'wb') as stderr:
    child = subprocess.Popen(
      [sys.executable, '-c', _HALF_WRITTEN, run[0], str(target)],
      cwd=ROOT,
      env=conftest.subprocess_env(1),
      stdout=subprocess.PIPE,
      stderr=stderr,
    )
  try:
    # Blocks until the write is under way (or the child ends, with its error in the log).
    assert child.stdout.readline() == b'writing\n', log.read_text()[-2000:]
    (tmp,) = [p for p in os.listdir(tmp_path) if p.startswith('.g.jaxgen.tmp-')]
    assert 0 < os.path.getsize(tmp_path / tmp) < len(before)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
  finally:
    child.kill()
    child.stdout.close()
  assert target.read_bytes() == before
  assert os.path.exists(tmp_path / tmp)  # a killed writer's temporary file stays, ignored
  assert export.load(str(target)).class_names == ['neutral', 'happy']


def _inverted_in_member(data: bytes, name: str, count: int = 8) -> bytes:
  """`data` (a zip archive) with `count` bytes inverted in the middle of member `name`'s data."""
  with zipfile.ZipFile(io.BytesIO(data)) as z:
    info = z.getinfo(name)
  header = data[info.header_offset : info.header_offset + 30]  # the local file header
  skip = 30 + int.from_bytes(header[26:28], 'little') + int.from_bytes(header[28:30], 'little')
  middle = info.header_offset + skip + info.compress_size // 2
  damaged = bytearray(data)
  damaged[middle : middle + count] = bytes(255 - b for b in data[middle : middle + count])
  return bytes(damaged)


def _damaged_copies(good: bytes) -> dict[str, tuple[bytes, str]]:
  """kind -> (bytes, what the error says) of every kind of damaged exported file."""
  flipped = _inverted_in_member(good, 'function.npy')
  return {
    'truncated': (good[: len(good) // 2], 'not a zip (.npz) archive'),
    'empty': (b'', 'empty file, 0 bytes'),
    'random': (np.random.default_rng(0).bytes(len(good)), 'not a zip (.npz) archive'),
    'flipped': (flipped, "Bad CRC-32 for file 'function.npy'"),
  }


@pytest.mark.parametrize('kind', ['truncated', 'empty', 'random', 'flipped'])
def test_load_of_a_damaged_file_says_which_and_what(run, tmp_path, kind):
  data, said = _damaged_copies(pathlib.Path(run[1]).read_bytes())[kind]
  path = tmp_path / f'{kind}.jaxgen'
  path.write_bytes(data)
  with pytest.raises(errors.BadInput) as caught:
    export.load(str(path))
  assert str(path) in str(caught.value) and said in str(caught.value)
  assert 'export it again' in str(caught.value)


def test_load_of_an_archive_with_valid_crcs_but_a_bad_function_or_meta(run, tmp_path):
  with np.load(run[1]) as z:
    arrays = {k: z[k] for k in z.files}
  function = bytearray(arrays['function'].tobytes())
  hlo = function.find(b'ML\xefR')  # the StableHLO bytecode inside the flatbuffer
  assert hlo > 0
  function[hlo + 200 : hlo + 300] = bytes(100)
  cases = {
    'hlo': (
      {**arrays, 'function': np.frombuffer(bytes(function), np.uint8)},
      'Failed to deserialize',
    ),
    'flatbuffer': ({**arrays, 'function': arrays['function'][:100]}, 'does not deserialize'),
    'no_meta': ({k: v for k, v in arrays.items() if k != 'meta'}, 'meta is not a file'),
    'bad_json': ({**arrays, 'meta': np.frombuffer(b'{"format', np.uint8)}, 'JSONDecodeError'),
  }
  for kind, (members, said) in cases.items():
    path = tmp_path / f'{kind}.jaxgen'
    with open(path, 'wb') as f:
      np.savez(f, **members)
    with pytest.raises(errors.BadInput, match='damaged or not a generator') as caught:
      export.load(str(path))
    assert str(path) in str(caught.value) and said in str(caught.value), (kind, caught.value)


def test_edit_with_a_damaged_model_file_says_so_in_one_line(run, tmp_path):
  (tmp_path / 'cut.jaxgen').write_bytes(pathlib.Path(run[1]).read_bytes()[:1000])
  Image.new('RGB', (8, 8)).save(tmp_path / 'face.png')
  result = _tool('edit', '--model=cut.jaxgen', '--input=face.png', '--out=o', cwd=tmp_path)
  _user_error(_as_text(result), 'cut.jaxgen is damaged', 'not a zip (.npz) archive')
  assert not (tmp_path / 'o').exists()
