"""Outputs are whole or absent: writers killed mid-write leave the previous output intact; JSON is
strict; an evaluation's pictures, metrics and report are replaced as one set."""

import filecmp
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from configs import stargan as stargan_config
from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.evaluation import restore
from tests import conftest

# A child process that writes `path` with one writer and is killed (SIGKILL) once the new
# bytes are all in the temporary file, before the rename: the worst moment.
_KILLED_WRITER = """
import os, signal, sys
import numpy as np
from jaxpr_gan import files, images
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
kind, path = sys.argv[1], sys.argv[2]
if kind == 'json':
  files.write_json(path, {'new': list(range(100000))})
elif kind == 'text':
  files.write_text(path, 'new\\n' * 100000)
elif kind == 'bytes':
  files.write_bytes(path, b'new' * 100000)
elif kind == 'png':
  images.save_png(path, np.zeros((300, 300, 3), np.uint8))
"""


@pytest.mark.parametrize('kind', ['json', 'text', 'bytes', 'png'])
def test_a_writer_killed_mid_write_leaves_the_previous_file(tmp_path, kind):
  path = tmp_path / f'out.{kind}'
  path.write_bytes(b'previous')
  result = subprocess.run(
    [sys.executable, '-c', _KILLED_WRITER, kind, str(path)],
    cwd=conftest.ROOT,
    env=conftest.subprocess_env(1),
    capture_output=True,
  )
  assert result.returncode == -9, result.stderr[-2000:]  # it did die in the write
  assert path.read_bytes() == b'previous'
  leftovers = [p.name for p in tmp_path.iterdir() if p.name != path.name]
  assert len(leftovers) == 1 and leftovers[0].startswith(f'.{path.name}.tmp-')


def test_an_error_in_the_block_leaves_the_previous_file_and_no_temporary(tmp_path):
  path = tmp_path / 'out.txt'
  path.write_text('previous')
  with pytest.raises(RuntimeError):
    with files.atomic_write(str(path)) as f:
      f.write('half')
      raise RuntimeError('disk full')
  assert path.read_text() == 'previous'
  assert os.listdir(tmp_path) == ['out.txt']


def test_json_is_strict_with_the_reason_for_each_null(tmp_path):
  path = str(tmp_path / 'm.json')
  files.write_json(path, {'fid': float('nan'), 'per': {'a': [1.5, float('-inf')]}, 'n': 3})
  text = open(path).read()
  assert 'NaN' not in text and 'Infinity' not in text
  got = json.loads(text, parse_constant=lambda c: pytest.fail(f'bare {c}'))
  assert got['fid'] is None and got['per']['a'] == [1.5, None] and got['n'] == 3
  assert got['nonfinite'] == {'fid': 'nan', 'per.a[1]': '-inf'}
  assert files.strict_json({'x': np.float32(math.inf)})[1] == {'x': 'inf'}


@pytest.fixture(scope='module')
def evaluated(tmp_path_factory):
  """A tiny run (freshly initialised weights) with one complete evaluation."""
  workdir = str(tmp_path_factory.mktemp('run'))
  config = stargan_config.get_config('tiny')
  config.eval.num_identities = 2
  restore.write_run(config, ['neutral', 'happy', 'sad', 'angry', 'surprised'], workdir)
  evaluate.evaluate(workdir)
  return workdir


def _same_folder(a: str, b: str) -> bool:
  cmp = filecmp.dircmp(a, b)
  names = sorted(os.listdir(a))
  return (
    names == sorted(os.listdir(b))
    and not cmp.diff_files
    and filecmp.cmpfiles(a, b, names, shallow=False)[0] == names
  )


# The evaluation in a child process, killed (SIGKILL) right after its first picture is written.
_KILLED_EVAL = """
import os, signal, sys
from jaxpr_gan import images
from jaxpr_gan.evaluation import evaluate
real = images.save_png
def save_and_die(*args, **kwargs):
  real(*args, **kwargs)
  os.kill(os.getpid(), signal.SIGKILL)
images.save_png = save_and_die
evaluate.evaluate(sys.argv[1])
"""


def test_a_killed_evaluation_leaves_the_previous_complete_set(evaluated, tmp_path):
  before = str(tmp_path / 'before')
  shutil.copytree(os.path.join(evaluated, 'eval'), before)
  result = subprocess.run(
    [sys.executable, '-c', _KILLED_EVAL, evaluated],
    cwd=conftest.ROOT,
    env=conftest.subprocess_env(1),
    capture_output=True,
    timeout=600,
  )
  assert result.returncode == -9, result.stderr[-3000:]
  eval_dir = os.path.join(evaluated, 'eval')
  assert _same_folder(eval_dir, before)  # metrics, report and pictures of the previous run
  unfinished = [n for n in os.listdir(evaluated) if n.startswith('.eval.tmp-')]
  assert len(unfinished) == 1  # the killed run's half set, beside it
  files.recover_folder(eval_dir)  # what the next evaluation does first
  assert not [n for n in os.listdir(evaluated) if n.startswith('.eval.')]
  assert _same_folder(eval_dir, before)


def test_a_set_swapped_half_way_comes_back(evaluated, tmp_path, monkeypatch):
  """Killed between moving the old set aside and moving the new one in."""
  eval_dir = os.path.join(evaluated, 'eval')
  before = str(tmp_path / 'before')
  shutil.copytree(eval_dir, before)
  real_rename = os.rename

  def rename_then_die(src, dst):
    if os.path.basename(src).startswith('.eval.tmp-'):
      raise SystemExit('killed')  # nothing after this line runs, as after a kill
    real_rename(src, dst)

  monkeypatch.setattr(os, 'rename', rename_then_die)
  with pytest.raises(SystemExit):
    with files.atomic_folder(eval_dir) as tmp:
      files.write_text(os.path.join(tmp, 'metrics.json'), '{}')
  monkeypatch.setattr(os, 'rename', real_rename)
  assert not os.path.exists(eval_dir)
  files.recover_folder(eval_dir)
  assert _same_folder(eval_dir, before)


def test_eval_writes_elsewhere_for_a_run_it_cannot_write_into(evaluated, tmp_path):
  out = str(tmp_path / 'elsewhere' / 'eval_of_run')
  os.makedirs(os.path.dirname(out))
  report = evaluate.evaluate(evaluated, out_dir=out)
  with open(os.path.join(out, 'metrics.json')) as f:
    assert json.load(f)['improvement_rate'] == report['improvement_rate']
  assert os.path.exists(os.path.join(out, 'report.html'))
  with pytest.raises(errors.BadInput, match='cannot write in the folder of the evaluation'):
    evaluate.evaluate(evaluated, out_dir=os.path.join(out, 'metrics.json', 'x'))
