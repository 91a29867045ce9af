"""Exact resume after SIGKILL: real train.py processes killed at arbitrary moments and restarted.

Every run is the same command (tiny StarGAN, 6 iterations, a checkpoint every 2 of which the last
2 are kept, so that saving step 6 deletes step 2; EMA on):

  python train.py --config configs/stargan.py:tiny --workdir DIR --config.num_train_steps=6 \
      --config.checkpoint_every=2 --config.max_checkpoints=2 --config.ema_decay=0.9

with the test session's JAX settings passed through the environment (8 CPU devices, most
optimisations off, the persistent compilation cache). A run that is killed and restarted must end
with the final checkpoint of an uninterrupted run, bit for bit: parameters, both optimiser states,
the EMA, the RNG key, the step and the data-iterator position. Set RESILIENCE_SEED to replay the
random kill moment of a failed run (the seed is printed).
"""

import functools
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings

import jax
import numpy as np
import pytest

from configs import stargan as stargan_config
from jaxpr_gan import checkpointing
from jaxpr_gan import registry
from jaxpr_gan.training import state as state_lib
from tests import conftest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NUM_STEPS = 6
_EVERY = 2
_MAX_KEPT = 2  # steps 4 and 6 remain
_OVERRIDES = (
  f'--config.num_train_steps={_NUM_STEPS}',
  f'--config.checkpoint_every={_EVERY}',
  f'--config.max_checkpoints={_MAX_KEPT}',
  '--config.ema_decay=0.9',
)
_TIMEOUT_S = 900  # one process, on a loaded 2-core machine
_POLL_S = 0.005
_LIVE = []  # processes of the running test


@pytest.fixture(autouse=True)
def _kill_leftover_processes():
  yield
  while _LIVE:
    _LIVE.pop().kill()


def _config():
  config = stargan_config.get_config('tiny')
  config.num_train_steps, config.checkpoint_every = _NUM_STEPS, _EVERY
  config.max_checkpoints, config.ema_decay = _MAX_KEPT, 0.9
  return config


class _Run:
  """One training process; its output goes to a log file beside `workdir`."""

  def __init__(self, workdir: str, script: str = 'train.py', extra: tuple[str, ...] = ()):
    self.workdir = workdir
    self.log_path = f'{workdir}.{time.monotonic_ns()}.log'
    with open(self.log_path, 'wb') as log:
      self.proc = subprocess.Popen(
        [
          sys.executable,
          os.path.join(_ROOT, script),
          '--config',
          'configs/stargan.py:tiny',
          '--workdir',
          workdir,
          *_OVERRIDES,
          *extra,
        ],
        cwd=_ROOT,
        env=conftest.subprocess_env(device_count=8),
        stdout=log,
        stderr=subprocess.STDOUT,
      )
    _LIVE.append(self)

  def log(self) -> str:
    with open(self.log_path, errors='replace') as f:
      return f.read()

  def describe(self) -> str:
    return f'exit status {self.proc.returncode}; log {self.log_path} ends:\n{self.log()[-3000:]}'

  def wait(self) -> int:
    try:
      return self.proc.wait(timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
      self.kill()
      pytest.fail(f'{self.log_path}: no exit within {_TIMEOUT_S} s')

  def poll_until(self, condition) -> bool:
    """Polls until `condition()` (-> True) or the process exits (-> False)."""
    deadline = time.monotonic() + _TIMEOUT_S
    while time.monotonic() < deadline:
      if condition():
        return True
      if self.proc.poll() is not None:
        return condition()
      time.sleep(_POLL_S)
    self.kill()
    pytest.fail(f'{self.log_path}: waited {_TIMEOUT_S} s')

  def kill(self) -> None:
    """SIGKILL, unless it has exited already; reaps the process."""
    if self.proc.poll() is None:
      os.kill(self.proc.pid, signal.SIGKILL)
    self.proc.wait()

  def resumed_at(self) -> int | None:
    found = re.findall(r'Resumed from .* at step (\d+)', self.log())
    return int(found[-1]) if found else None


def _committed_steps(workdir: str) -> list[int]:
  """Steps orbax has committed (renamed from <step>.orbax-checkpoint-tmp), straight from disk."""
  try:
    names = os.listdir(os.path.join(workdir, 'checkpoints'))
  except FileNotFoundError:
    return []
  return sorted(int(n) for n in names if n.isdigit())


@functools.cache
def _template():
  config = _config()
  return jax.eval_shape(functools.partial(state_lib.init_state, registry.build(config, 5), config))


def _checkpoint(workdir: str, step: int | None = None):
  """-> (committed steps, state, data-iterator state) of `step` (default: the latest)."""
  ckpt = checkpointing.Checkpointer(workdir)
  steps = ckpt.all_steps()
  state, iter_state = ckpt.restore(steps[-1] if step is None else step, _template())
  ckpt.close()
  return steps, jax.device_get(state), iter_state


def _assert_same_state(got, want):
  paths_got, tree_got = jax.tree_util.tree_flatten_with_path(got)
  paths_want, tree_want = jax.tree_util.tree_flatten_with_path(want)
  assert tree_got == tree_want
  for (path, x), (_, y) in zip(paths_got, paths_want):
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape, jax.tree_util.keystr(path)
    # Bitwise: equal bytes, so -0.0 vs 0.0 or different NaNs would count as differences.
    if x.tobytes() != y.tobytes():
      diff = np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))
      pytest.fail(
        f'{jax.tree_util.keystr(path)} differs from the uninterrupted run: max |diff| {diff}'
      )


def _assert_equals_uninterrupted(workdir: str, reference):
  steps, state, iter_state = _checkpoint(workdir)
  want_steps, want_state, want_iter = reference['final']
  assert steps == want_steps
  assert int(state.step) == _NUM_STEPS
  assert jax.tree.leaves(state.ema_params), 'the EMA is not covered'
  _assert_same_state(state, want_state)  # params, opt_state['g'/'d'], ema_params, rng, step
  assert iter_state == want_iter  # data order
  leftovers = checkpointing.Checkpointer(workdir).leftovers()
  assert not leftovers, f'unfinished saves or deletions left behind: {leftovers}'


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  """The uninterrupted run; also when each checkpoint appeared, to time kills in other runs."""
  workdir = str(tmp_path_factory.mktemp('resilience') / 'uninterrupted')
  run = _Run(workdir)
  appeared = {}

  def record():
    for s in _committed_steps(workdir):
      appeared.setdefault(s, time.monotonic())
    return False

  run.poll_until(record)
  end = time.monotonic()
  assert run.wait() == 0, run.describe()
  assert run.resumed_at() is None
  final = _checkpoint(workdir)
  assert final[0] == list(range(_NUM_STEPS - (_MAX_KEPT - 1) * _EVERY, _NUM_STEPS + 1, _EVERY))
  # Old steps were deleted by way of an atomic rename into checkpoints/deleting/, then emptied.
  assert os.listdir(os.path.join(workdir, 'checkpoints', 'deleting')) == []
  assert checkpointing.Checkpointer(workdir).leftovers() == []
  return {
    'workdir': workdir,
    'final': final,
    'seconds_left_after': {s: end - t for s, t in appeared.items()},
  }


def test_sigkill_at_arbitrary_moments_then_restart_equals_uninterrupted_run(reference, tmp_path):
  seed = int(os.environ.get('RESILIENCE_SEED', time.time_ns() % 10**6))
  print(f'RESILIENCE_SEED={seed}')
  rng = random.Random(seed)
  workdir = str(tmp_path / 'killed')

  # 1. Killed as soon as its first checkpoint is committed (while training on, or still
  # finishing that save's bookkeeping).
  run = _Run(workdir)
  assert run.poll_until(lambda: _committed_steps(workdir)), run.describe()
  run.kill()
  assert run.proc.returncode == -signal.SIGKILL, run.describe()
  first = checkpointing.Checkpointer(workdir).latest_step()
  assert first is not None and first < _NUM_STEPS, first

  # 2. Restarted with the same command, killed again at a random moment after its first new
  # checkpoint: mid-step, mid-sample, mid-save or mid-deletion of an old checkpoint.
  run = _Run(workdir)
  assert run.poll_until(lambda: any(s > first for s in _committed_steps(workdir))), run.describe()
  new = min(s for s in _committed_steps(workdir) if s > first)
  left = reference['seconds_left_after']
  delay = rng.uniform(0.0, 0.8 * left.get(new, min(left.values())))
  print(f'second kill {delay:.3f} s after step {new} was committed')
  deadline = time.monotonic() + delay
  run.poll_until(lambda: time.monotonic() >= deadline)
  run.kill()
  assert run.resumed_at() == first, run.describe()
  if run.proc.returncode != -signal.SIGKILL:  # finished before the kill: a faster machine
    assert run.proc.returncode == 0, run.describe()
    warnings.warn(
      f'the second run ended before its kill {delay:.3f} s after step {new}', stacklevel=2
    )
  latest = checkpointing.Checkpointer(workdir).latest_step()
  assert latest >= new

  # 3. Restarted again, to the end: continues from the last committed checkpoint.
  run = _Run(workdir)
  assert run.wait() == 0, run.describe()
  assert run.resumed_at() == latest, run.describe()
  _assert_equals_uninterrupted(workdir, reference)


def test_sigkill_during_async_save_keeps_previous_checkpoint(reference, tmp_path):
  workdir = str(tmp_path / 'killed_in_save')
  kill_step = _NUM_STEPS  # the last save; its predecessor is among the reference run's kept steps
  previous = kill_step - _EVERY
  run = _Run(workdir, 'tests/resilience_worker.py', (f'--kill_during_save={kill_step}',))
  run.wait()
  assert run.proc.returncode == -signal.SIGKILL, run.describe()
  assert f'SIGKILL during the save of step {kill_step}' in run.log()

  # On disk: the interrupted save under its temporary name, nothing committed for its step.
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  assert os.path.isdir(os.path.join(ckpt_dir, f'{kill_step}.orbax-checkpoint-tmp'))
  assert _committed_steps(workdir) == [previous - _EVERY, previous]
  reader = checkpointing.Checkpointer(workdir)
  assert reader.partial_saves() == [f'{kill_step}.orbax-checkpoint-tmp']
  assert reader.all_steps() == [previous - _EVERY, previous]  # the partial one is not listed
  assert reader.latest_step() == previous
  # The previous checkpoint restores, and is the uninterrupted run's.
  _, state, iter_state = _checkpoint(workdir, previous)
  _, want_state, want_iter = _checkpoint(reference['workdir'], previous)
  _assert_same_state(state, want_state)
  assert iter_state == want_iter
  # Opening the directory does not delete anything (an evaluation beside a running training
  # must not remove its save in flight); the first save of a writer removes every leftover,
  # also of steps it will never save again (a restart with another --config.checkpoint_every).
  assert reader.partial_saves() == [f'{kill_step}.orbax-checkpoint-tmp']
  other = str(tmp_path / 'other_schedule')
  shutil.copytree(workdir, other)
  writer = checkpointing.Checkpointer(other)
  writer.save(previous + 1, state, iter_state, reader.meta(previous))
  writer.wait()
  assert writer.leftovers() == []
  assert checkpointing.Checkpointer(other).all_steps() == [
    previous - _EVERY,
    previous,
    previous + 1,
  ]
  writer.close()
  reader.close()

  # The same command restarts from the previous checkpoint and ends as the uninterrupted run.
  run = _Run(workdir)
  assert run.wait() == 0, run.describe()
  assert run.resumed_at() == previous, run.describe()
  _assert_equals_uninterrupted(workdir, reference)
