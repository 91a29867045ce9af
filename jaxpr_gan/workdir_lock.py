"""One writer per workdir: a training run holds `<workdir>/.lock` while it runs.

The lock is an exclusive `flock` on that file, which the kernel releases when its process ends in
any way (kill -9 included), so a dead run's lock is taken over by the next run without anybody
removing a file; on NFS, Linux maps `flock` to POSIX byte-range locks, which the server keeps. The
file holds the holder's host, pid and start time, for the error that a second run gets at once.
In a multi-process run only process 0 takes it, and every process learns whether it did.
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from jaxpr_gan import errors

LOCK_FILE = '.lock'


class WorkdirInUse(errors.UserError):
  """Another live process holds the workdir."""


def _read(fd: int) -> dict:
  os.lseek(fd, 0, os.SEEK_SET)
  try:
    return json.loads(os.read(fd, 1 << 16).decode() or '{}')
  except (UnicodeDecodeError, ValueError):
    return {}


def _describe(holder: dict) -> str:
  if not holder:
    return 'another process'
  return (
    f'pid {holder.get("pid")} on host {holder.get("host")} (since {holder.get("started")}: '
    f'{holder.get("command", "?")})'
  )


class WorkdirLock:
  """The lock of one workdir; `acquire` raises WorkdirInUse naming the live holder."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd = None
    self.previous: dict = {}  # what a dead holder left in the file

  def acquire(self) -> 'WorkdirLock':
    try:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise errors.BadInput(
        f'cannot write in the workdir {os.path.dirname(self.path)}: {e.strerror}; '
        'choose a --workdir this user can write to'
      ) from e
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = _read(fd)
      os.close(fd)
      raise WorkdirInUse(
        f'{os.path.dirname(self.path)} is in use by {_describe(holder)}; wait for that run to '
        'end (or stop it) or use another --workdir'
      ) from None
    self.previous = _read(fd)
    me = {
      'host': socket.gethostname(),
      'pid': os.getpid(),
      'started': datetime.datetime.now().isoformat(timespec='seconds'),
      'command': ' '.join(sys.argv)[:300],
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    self._fd = fd
    if self.previous and self.previous.get('pid') != os.getpid():
      logging.info('Took over the workdir lock of %s, which has ended.', _describe(self.previous))
    return self

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)  # releases the flock; the file stays, naming the last holder
      self._fd = None


@contextlib.contextmanager
def held(workdir: str):
  """Holds `workdir`'s lock in process 0 for the block; every process raises if it is taken."""
  lock, error = WorkdirLock(workdir), None
  if jax.process_index() == 0:
    try:
      lock.acquire()
    except errors.UserError as e:
      error = e
  if jax.process_count() > 1:
    failed = multihost_utils.broadcast_one_to_all(np.int32(error is not None))
    if int(failed) and error is None:
      error = WorkdirInUse(f'process 0 could not take the lock of {workdir}; see its log')
  if error is not None:
    raise error
  try:
    yield lock
  finally:
    lock.release()
