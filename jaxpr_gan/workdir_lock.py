"""One writer per workdir: a training run holds `<workdir>/.lock` while it runs.

The lock is an exclusive `flock` on that file, which the kernel releases when its process ends in
any way (kill -9 included), so a dead run's lock is taken over by the next run without anybody
removing a file; on NFS, Linux maps `flock` to POSIX byte-range locks, which the server keeps. The
file holds the holder's host, pid and start time, for the error that a second run gets at once.
In a multi-process run only process 0 takes it, and every process learns whether it did.

On a gs:// or s3:// workdir (no flock) the lock is the object `<workdir>/.lock`, made by a
conditional create (storage.create_exclusive: one of many creators wins) with the same holder
information and deleted at the end (`BucketLock`). A lock left by a process of this host that no
longer runs (kill -9) is taken over at once; otherwise it is a lease: the holder rewrites the
object every `REFRESH_S` seconds, and a lock not rewritten for `LEASE_S` seconds (a dead host) is
taken over with a warning. The lease compares the holder's clock with the taker's: hosts whose
clocks differ by a good part of LEASE_S would take over a live run's lock.
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
import threading
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from jaxpr_gan import errors
from jaxpr_gan import storage

LOCK_FILE = '.lock'
LEASE_S = 120.0  # a bucket lock not rewritten for this long is taken over (its host is gone)
REFRESH_S = 30.0  # how often a holder rewrites its bucket lock


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


def _holder_info() -> dict:
  return {
    'host': socket.gethostname(),
    'pid': os.getpid(),
    'started': datetime.datetime.now().isoformat(timespec='seconds'),
    'command': ' '.join(sys.argv)[:300],
  }


def _in_use(workdir: str, holder: dict) -> WorkdirInUse:
  return WorkdirInUse(
    f'{workdir} is in use by {_describe(holder)}; wait for that run to end (or stop it) or use '
    'another --workdir'
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
      raise _in_use(os.path.dirname(self.path), holder) from None
    self.previous = _read(fd)
    me = _holder_info()
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


def _alive(pid) -> bool:
  try:
    os.kill(int(pid), 0)
  except (ProcessLookupError, ValueError, TypeError):
    return False
  except PermissionError:  # another user's live process
    return True
  return True


class BucketLock:
  """The lock of a gs:// or s3:// workdir: an object made only if absent, kept fresh by a
  daemon thread (the module docstring); `acquire` raises WorkdirInUse naming the live holder."""

  def __init__(self, workdir: str):
    self.workdir = str(workdir).rstrip('/')
    self.path = storage.join(workdir, LOCK_FILE)
    self.previous: dict = {}  # the holder whose lock this one took over
    self._me: dict | None = None
    self._stop = threading.Event()
    self._thread = None

  def _read(self) -> dict | None:
    """The holder's record; None if there is no lock, {} if it cannot be parsed."""
    try:
      holder = json.loads(storage.read_text(self.path) or '{}')
    except FileNotFoundError:
      return None
    except (UnicodeDecodeError, ValueError):
      return {}
    return holder if isinstance(holder, dict) else {}

  def _stale(self, holder: dict) -> str:
    """Why `holder`'s lock may be taken over ('' if it may not)."""
    if holder.get('host') == socket.gethostname() and not _alive(holder.get('pid')):
      return 'its process no longer runs'
    age = time.time() - float(holder.get('refreshed') or 0)
    return f'not renewed for {age:.0f} s (lease {LEASE_S:g} s)' if age > LEASE_S else ''

  def acquire(self) -> 'BucketLock':
    me = dict(_holder_info(), refreshed=time.time())
    for _ in range(3):  # a lock released or taken between our create and our read: again
      if storage.create_exclusive(self.path, json.dumps(me).encode()):
        break
      holder = self._read()
      if holder is None:
        continue
      why = self._stale(holder)
      if not why:
        raise _in_use(self.workdir, holder)
      log = logging.info if why.startswith('its process') else logging.warning
      log('Taking over the workdir lock of %s: %s.', _describe(holder), why)
      self.previous = holder
      storage.remove(self.path)
    else:
      raise _in_use(self.workdir, self._read() or {})
    self._me = me
    self._stop.clear()
    self._thread = threading.Thread(target=self._refresh, name='workdir-lease', daemon=True)
    self._thread.start()
    return self

  def _ours(self, holder: dict | None) -> bool:
    keys = ('host', 'pid', 'started')
    return holder is not None and all(holder.get(k) == self._me.get(k) for k in keys)

  def _refresh(self) -> None:
    while not self._stop.wait(REFRESH_S):
      try:
        holder = self._read()
        if not self._ours(holder):
          logging.error('The workdir lock %s was taken by %s.', self.path, _describe(holder or {}))
          return
        self._me['refreshed'] = time.time()
        storage.write_text(self.path, json.dumps(self._me))
      except Exception as e:  # noqa: BLE001  (a network error: the next round tries again)
        logging.warning('Could not renew the workdir lock %s: %s', self.path, e)

  def release(self) -> None:
    if self._me is None:
      return
    self._stop.set()
    self._thread.join()
    try:
      if self._ours(self._read()):
        storage.remove(self.path)
    except Exception as e:  # noqa: BLE001  (the lock then expires: LEASE_S)
      logging.warning('Could not remove the workdir lock %s: %s', self.path, e)
    self._me = None


def lock_for(workdir: str):
  """The lock of `workdir`: a flock locally, a BucketLock on gs:// and s3://."""
  return BucketLock(workdir) if storage.is_remote(workdir) else WorkdirLock(workdir)


@contextlib.contextmanager
def held(workdir: str):
  """Holds `workdir`'s lock in process 0 for the block; every process raises if it is taken."""
  lock, error = lock_for(workdir), None
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
