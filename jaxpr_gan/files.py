"""File helpers: digests of weights files, output folders checked before any work, and outputs
written whole or not at all.

Every output a run, an evaluation or a tool writes goes through `atomic_write` (or the helpers
built on it): the bytes go to a temporary name beside the target, are flushed to the disk, and
the temporary file is renamed over the target (atomic on POSIX file systems). A process killed at
any moment therefore leaves either the previous file or the new one, never a part of either; a
killed writer's temporary file (`.<name>.tmp-<pid>-<random>`) is left behind and ignored.

JSON is strict (RFC 8259): NaN and infinities, which Python's json module writes as bare
`NaN`/`Infinity` that other readers reject, become null and are listed, by dotted key, under
`"nonfinite"` with the value they had.

A gs:// or s3:// path (jaxpr_gan.storage) is written by one whole-object PUT, which the store
applies atomically: readers see the previous object or the new one. A folder there is a key
prefix: see `atomic_folder` for what a replaced set looks like to readers.
"""

from collections.abc import Iterator
import contextlib
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
import tempfile
from typing import Any, IO

from jaxpr_gan import errors


def _storage():
  # jaxpr_gan.storage imports this module (its local writes are ours): imported when used.
  from jaxpr_gan import storage  # noqa: PLC0415

  return storage


REMOTE_PREFIXES = ('gs://', 's3://')


def is_remote(path) -> bool:
  """Whether `path` is a gs:// or s3:// URL (jaxpr_gan.storage), not a local path."""
  return str(path).startswith(REMOTE_PREFIXES)


def sha256(path: str) -> str:
  """Hex SHA-256 of a file's bytes: recorded beside every weights file a run or a metric used."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def temporary_name(path: str) -> str:
  """A name beside `path` that no other writer uses: `.<name>.tmp-<pid>-<random>`."""
  folder, name = os.path.split(path)
  return os.path.join(folder, f'.{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}')


def _fsync_folder(folder: str) -> None:
  try:
    fd = os.open(folder or '.', os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:  # some file systems refuse fsync on a folder; the rename is still atomic
    pass
  finally:
    os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'w', **open_kwargs) -> Iterator[IO[Any]]:
  """`open(path, mode)` whose file appears, complete, only when the block ends without error."""
  if mode not in ('w', 'wb'):
    raise ValueError(f"atomic_write writes whole files: mode 'w' or 'wb', not {mode!r}")
  if is_remote(path):
    with _remote_write(path, mode, **open_kwargs) as f:
      yield f
    return
  folder = os.path.dirname(path)
  tmp = temporary_name(path)
  try:
    with open(tmp, mode, **open_kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise
  _fsync_folder(folder)


@contextlib.contextmanager
def _remote_write(path: str, mode: str, **open_kwargs) -> Iterator[IO[Any]]:
  """The block writes into memory; the bytes become the object in one PUT when it ends well."""
  buffer = io.BytesIO()
  f = buffer
  if mode == 'w':
    f = io.TextIOWrapper(buffer, write_through=True, **open_kwargs)
  yield f
  f.flush()
  _storage().write_bytes(path, buffer.getvalue())


def write_bytes(path: str, data: bytes) -> None:
  with atomic_write(path, 'wb') as f:
    f.write(data)


def write_text(path: str, text: str) -> None:
  # surrogateescape: a file name that is not UTF-8 (os.fsdecode of raw bytes) round-trips.
  with atomic_write(path, 'w', encoding='utf-8', errors='surrogateescape') as f:
    f.write(text)


def strict_json(value: Any) -> tuple[Any, dict[str, str]]:
  """-> (value with every NaN/inf float replaced by None, {dotted key: 'nan'/'inf'/'-inf'})."""
  found = {}

  def walk(v, key):
    if isinstance(v, float) and not math.isfinite(v):
      found[key or '.'] = str(v)
      return None
    if isinstance(v, dict):
      return {k: walk(x, f'{key}.{k}' if key else str(k)) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
      return [walk(x, f'{key}[{i}]') for i, x in enumerate(v)]
    if hasattr(v, 'dtype') and hasattr(v, 'tolist'):  # numpy scalars and arrays
      return walk(v.tolist(), key)
    return v

  return walk(value, ''), found


def dumps_json(value: Any, **kwargs) -> str:
  """Strict JSON text; a dict with non-finite values gets them listed under "nonfinite"."""
  clean, found = strict_json(value)
  if found:
    if not isinstance(clean, dict):
      raise ValueError(f'non-finite values {found} outside a JSON object')
    clean = dict(clean, nonfinite={**clean.get('nonfinite', {}), **found})
  return json.dumps(clean, allow_nan=False, **kwargs)


def write_json(path: str, value: Any, indent: int | None = 1, **kwargs) -> None:
  """Strict JSON (see the module docstring), written atomically."""
  write_text(path, dumps_json(value, indent=indent, **kwargs) + '\n')


def make_writable_folder(folder: str, what: str, flag: str = '') -> None:
  """Creates `folder` if needed and checks that a file can be written in it, at once: a run
  that could not save must not train first. Raises errors.BadInput naming it. On gs:// and
  s3:// (no folders): a one-line UserError naming the URL unless its bucket can be used
  (storage_check.check_reachable)."""
  if is_remote(folder):
    from jaxpr_gan import storage_check  # noqa: PLC0415  (imports storage: see _storage)

    storage_check.check_reachable(folder)
    return
  try:
    os.makedirs(folder, exist_ok=True)
    probe = temporary_name(os.path.join(folder, 'write-probe'))
    with open(probe, 'wb'):
      pass
    os.remove(probe)
  except OSError as e:
    fix = f'; pass a {flag} this user can write to' if flag else '; make it writable'
    raise errors.BadInput(f'cannot write in {what} {folder}: {e.strerror or e}{fix}') from e


def check_folder(folder: str, flag: str, may_create: bool) -> None:
  """A one-line UserError naming `folder` unless files can be written in it, before any work.

  may_create: a missing `folder` is fine when the nearest existing folder above it is writable
  (the caller makes it); else it must exist (a mistyped path is not silently created). On gs://
  and s3://: whether the bucket can be used (storage_check.check_reachable).
  """
  if is_remote(folder):
    from jaxpr_gan import storage_check  # noqa: PLC0415  (imports storage: see _storage)

    storage_check.check_reachable(folder)
    return
  found = os.path.abspath(folder or '.')
  while not os.path.exists(found):
    if not may_create:
      raise errors.NotFound(
        f'{flag}: folder {folder} does not exist; create it first (mkdir -p {folder})'
      )
    found = os.path.dirname(found)
  if not os.path.isdir(found):
    raise errors.BadInput(f'{flag}: cannot make folder {folder}: {found} is a file, not a folder')
  if not os.access(found, os.W_OK | os.X_OK):
    raise errors.BadInput(f'{flag}: cannot write in {found} (no permission or a read-only disk)')


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's live process
    return True
  return True


def recover_folder(path: str) -> None:
  """Puts back a folder whose replacement (`atomic_folder`) was killed between its two renames,
  and removes what killed writers left: older copies and unfinished temporary folders. Nothing
  on gs:// and s3://, where `atomic_folder` leaves no such folders."""
  if is_remote(path):
    return
  parent, name = os.path.split(os.path.abspath(path))
  if not os.path.isdir(parent):
    return
  olds, tmps = [], []
  for entry in os.listdir(parent):
    found = re.fullmatch(rf'\.{re.escape(name)}\.(old|tmp)-(\d+)-[0-9a-f]+', entry)
    if found:
      (olds if found.group(1) == 'old' else tmps).append((entry, int(found.group(2))))
  olds.sort(key=lambda e: os.path.getmtime(os.path.join(parent, e[0])))
  if olds and not os.path.exists(path):
    os.rename(os.path.join(parent, olds.pop()[0]), path)
  for entry, _ in olds + [t for t in tmps if not _alive(t[1])]:
    shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: str) -> Iterator[str]:
  """Yields a new temporary folder beside `path`; when the block ends without error, it replaces
  `path` whole. A process killed at any moment leaves the previous folder, complete (or, between
  the two renames, under `.<name>.old-*`, where `recover_folder` finds it again).

  On gs:// and s3:// (no rename): the set is made in a local temporary folder, then uploaded
  over `path`, and the previous set's files that the new one lacks are deleted. Readers may then
  see the folder change file by file (each file whole: the new one or the old one); a process
  killed during the upload leaves a mix of both sets, which the next complete run replaces.
  """
  if is_remote(path):
    with _remote_folder(path) as tmp:
      yield tmp
    return
  recover_folder(path)
  tmp = temporary_name(path)
  os.makedirs(tmp)
  try:
    yield tmp
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  old = None
  if os.path.exists(path):
    old = temporary_name(path).replace('.tmp-', '.old-', 1)
    os.rename(path, old)
  os.rename(tmp, path)
  _fsync_folder(os.path.dirname(os.path.abspath(path)))
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _remote_folder(path: str) -> Iterator[str]:
  storage = _storage()
  tmp = tempfile.mkdtemp(prefix='jaxpr_gan-')
  try:
    yield tmp
    old = set(storage.files_under(path))
    new = set(storage.put_folder(tmp, path, only_changed=False))
    for rel in sorted(old - new):
      storage.remove(storage.join(path, rel))
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
