"""Damaged checkpoints are detected, named, and skipped: a flipped bit, a truncated, deleted or
garbled file; training resumes from the newest intact step, evaluation reads it."""

import glob
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import stargan as stargan_config
from jaxpr_gan import checkpointing
from jaxpr_gan import errors
from jaxpr_gan.evaluation import restore
from jaxpr_gan.training import loop
from tests import conftest
from tests import test_cli


def _config():
  return stargan_config.get_config('tiny')  # 4 iterations, checkpoints at 2 and 4


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """A 4-step run (steps 2 and 4 saved) and its final state."""
  workdir = str(tmp_path_factory.mktemp('run'))
  state = loop.train(_config(), workdir)
  return workdir, jax.device_get(state)


@pytest.fixture
def copy(run, tmp_path):
  workdir = str(tmp_path / 'copy')
  shutil.copytree(run[0], workdir)
  return workdir


def _array_files(workdir: str, step: int) -> list[str]:
  """The files of step's array data (orbax's OCDBT: the run's and its processes' databases)."""
  state = os.path.join(workdir, 'checkpoints', str(step), 'state')
  return sorted(glob.glob(os.path.join(state, 'd', '*')) + glob.glob(f'{state}/ocdbt.*/d/*'))


def _flip_bit(path: str, offset: int, bit: int = 3) -> None:
  with open(path, 'r+b') as f:
    f.seek(offset)
    byte = f.read(1)[0]
    f.seek(offset)
    f.write(bytes([byte ^ (1 << bit)]))


def _restore_step(workdir: str, step: int):
  return restore.restore(workdir, step)


def _damage(workdir: str, how: str, step: int = 4) -> None:
  """Damages every array file of `step` (which of them a restore reads depends on the layout)."""
  for path in _array_files(workdir, step):
    if how == 'flipped bit':
      _flip_bit(path, os.path.getsize(path) // 2)
    elif how == 'truncated file':
      os.truncate(path, os.path.getsize(path) // 2)
    elif how == 'deleted file':
      os.remove(path)
  if how in ('flipped bit', 'truncated file', 'deleted file'):
    return
  if how == 'garbled array metadata':
    with open(os.path.join(workdir, 'checkpoints', str(step), 'state', '_METADATA'), 'r+b') as f:
      f.seek(10)
      f.write(b'#garbled#')
  elif how == 'altered run metadata':  # still valid JSON: only the digest tells
    meta_path = os.path.join(workdir, 'checkpoints', str(step), 'meta', 'metadata')
    with open(meta_path) as f:
      meta = json.load(f)
    meta['class_names'][0] = 'calm'
    with open(meta_path, 'w') as f:
      json.dump(meta, f)
  else:
    raise ValueError(how)


@pytest.mark.parametrize(
  'how',
  [
    'flipped bit',
    'truncated file',
    'deleted file',
    'garbled array metadata',
    'altered run metadata',
  ],
)
def test_damage_is_detected_and_named(run, copy, how):
  assert _restore_step(run[0], 4).step == 4  # intact before (the original)
  _damage(copy, how)
  with pytest.raises(checkpointing.DamagedCheckpoint, match='checkpoint step 4 in .* is damaged'):
    _restore_step(copy, 4)
  assert _restore_step(copy, 2).step == 2  # the other step is untouched


def test_state_digest_changes_with_one_bit():
  state = {'w': np.arange(6, dtype=np.float32), 'k': np.array([1, 2], np.uint32)}
  base = checkpointing.state_digest(state)
  for bit in (0, 17, 31):
    w = state['w'].copy()
    w.view(np.uint32)[3] ^= np.uint32(1 << bit)
    assert checkpointing.state_digest(dict(state, w=w))["['w']"] != base["['w']"]
  swapped = state['w'][[1, 0, 2, 3, 4, 5]]  # same words, other places
  assert checkpointing.state_digest(dict(state, w=swapped))["['w']"] != base["['w']"]


def test_digest_programs_take_bounded_groups_and_give_the_same_digest(run, monkeypatch):
  state = run[1]
  whole = checkpointing.state_digest(state)
  sizes = [x.size for x in jax.tree.leaves(state)]
  groups = checkpointing._chunks(jax.tree.leaves(state), limit=1000)  # pylint: disable=protected-access
  assert [x.size for g in groups for x in g] == sizes  # every leaf once, in order
  assert all(sum(x.size for x in g) <= 1000 or len(g) == 1 for g in groups) and len(groups) > 1
  monkeypatch.setattr(checkpointing, '_DIGEST_CHUNK', 1000)
  monkeypatch.setattr(checkpointing._chunks, '__defaults__', (1000,))  # pylint: disable=protected-access
  assert checkpointing.state_digest(state) == whole


def test_eval_takes_the_newest_intact_step_and_refuses_a_named_damaged_one(copy):
  _damage(copy, 'flipped bit')
  assert restore.restore(copy).step == 2
  with pytest.raises(checkpointing.DamagedCheckpoint) as e:
    restore.restore(copy, 4)
  assert isinstance(e.value, errors.UserError)  # one line on the command line, exit status 2
  assert os.path.isdir(os.path.join(copy, 'checkpoints', '4'))  # a reader moves nothing


def test_training_resumes_from_the_newest_intact_step(run, copy):
  _damage(copy, 'truncated file')
  got = jax.device_get(loop.train(_config(), copy))  # step 4 damaged: resumes at 2
  want = run[1]
  for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  moved = os.path.join(copy, 'checkpoints', checkpointing.DAMAGED, '4')
  assert os.path.isdir(moved)  # kept for a post-mortem, out of orbax's sight
  ckpt = checkpointing.Checkpointer(copy)
  assert ckpt.all_steps() == [2, 4]
  assert ckpt.restore(4, want, with_data_iter=False)[0] is not None  # the new step 4 is intact


def test_no_intact_step_is_an_error_naming_every_step(copy):
  _damage(copy, 'deleted file', 4)
  _damage(copy, 'altered run metadata', 2)
  with pytest.raises(checkpointing.DamagedCheckpoint, match='no intact step.*step 4.*step 2'):
    restore.restore(copy)


def test_a_step_removed_while_read_sends_the_reader_to_the_newest(copy, monkeypatch):
  """What eval.py meets while training deletes old steps (max_to_keep): the step it picked
  vanishes mid-read, and it reads the newest step there is instead."""
  real = checkpointing.Checkpointer.restore
  removed = []

  def restore_and_lose(self, step, *args, **kwargs):
    if not removed:
      removed.append(step)
      shutil.rmtree(os.path.join(copy, 'checkpoints', str(step)))
    return real(self, step, *args, **kwargs)

  monkeypatch.setattr(checkpointing.Checkpointer, 'restore', restore_and_lose)
  assert restore.restore(copy).step == 2
  assert removed == [4]


def test_eval_cli_names_the_damaged_step_in_one_line(copy):
  """No traceback: not the error's, nor tensorstore's late callbacks (`Event loop is closed`)."""
  _damage(copy, 'truncated file')
  result = subprocess.run(
    [sys.executable, 'eval.py', f'--workdir={copy}', '--step=4'],
    cwd=conftest.ROOT,
    env=conftest.subprocess_env(1),
    capture_output=True,
    text=True,
    timeout=300,
  )
  line = test_cli._user_error(result, 'checkpoint step 4 in', 'is damaged')  # pylint: disable=protected-access
  assert 'Event loop is closed' not in result.stderr, line
