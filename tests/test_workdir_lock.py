"""One writer per workdir: a second train.py is refused at once, naming the holder; a dead
holder's lock is taken over; an unwritable workdir fails before any work."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from configs import stargan as stargan_config
from jaxpr_gan import errors
from jaxpr_gan import workdir_lock
from jaxpr_gan.training import loop
from jaxpr_gan.training import steps as steps_lib
from tests import conftest

_HOLD = (
  'import sys, time\n'
  'from jaxpr_gan import workdir_lock\n'
  'workdir_lock.WorkdirLock(sys.argv[1]).acquire()\n'
  "print('held', flush=True)\n"
  'time.sleep(600)\n'
)


@pytest.fixture
def holder(tmp_path):
  """Another process holding tmp_path/run's lock (as a training run there would)."""
  workdir = tmp_path / 'run'
  workdir.mkdir()
  proc = subprocess.Popen(
    [sys.executable, '-c', _HOLD, str(workdir)],
    cwd=conftest.ROOT,
    stdout=subprocess.PIPE,
    env=conftest.subprocess_env(1),
  )
  assert proc.stdout.readline().strip() == b'held'
  yield str(workdir), proc
  proc.kill()
  proc.wait()


def test_second_train_is_refused_at_once_naming_the_holder(holder):
  workdir, proc = holder
  before = sorted(os.listdir(workdir))
  result = subprocess.run(
    [sys.executable, 'train.py', '--config', 'configs/stargan.py:tiny', '--workdir', workdir],
    cwd=conftest.ROOT,
    capture_output=True,
    text=True,
    env=conftest.subprocess_env(8),
    timeout=300,
  )
  assert result.returncode == 2
  assert 'Traceback' not in result.stderr
  lines = [l for l in result.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1, result.stderr  # the other lines: the run's first log lines
  assert lines[0].startswith(f'error: {workdir} is in use by pid {proc.pid} on host ')
  assert socket.gethostname() in lines[0]
  assert sorted(os.listdir(workdir)) == before  # nothing written, nothing compiled


def test_lock_of_a_killed_process_is_taken_over(holder):
  workdir, proc = holder
  with pytest.raises(workdir_lock.WorkdirInUse, match=f'pid {proc.pid}'):
    workdir_lock.WorkdirLock(workdir).acquire()
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  lock = workdir_lock.WorkdirLock(workdir).acquire()
  try:
    assert lock.previous['pid'] == proc.pid  # the dead holder, named in the log
  finally:
    lock.release()


def test_lock_is_released_at_the_end_and_held_once_per_process(tmp_path):
  with workdir_lock.held(str(tmp_path)):
    with pytest.raises(workdir_lock.WorkdirInUse, match=f'pid {os.getpid()}'):
      workdir_lock.WorkdirLock(str(tmp_path)).acquire()  # flock: per open file, not per pid
  with workdir_lock.held(str(tmp_path)):
    pass


def _no_compiling(*args, **kwargs):
  raise AssertionError('compiled before the workdir was checked')


@pytest.mark.parametrize('blocked', ['workdir', 'checkpoints'])
def test_unwritable_workdir_fails_before_any_work(tmp_path, monkeypatch, blocked):
  """A file where the folder should be (what root meets; a read-only mount fails the same way)."""
  monkeypatch.setattr(steps_lib, 'compile_steps', _no_compiling)
  workdir = tmp_path / 'run'
  if blocked == 'workdir':
    (tmp_path / 'file').write_text('x')
    workdir = tmp_path / 'file' / 'run'
  else:
    workdir.mkdir()
    (workdir / 'checkpoints').write_text('x')
  config = stargan_config.get_config('tiny')
  what = 'the workdir' if blocked == 'workdir' else 'the checkpoints folder'
  with pytest.raises(errors.BadInput, match=f'cannot write in {what} '):
    loop.train(config, str(workdir))
