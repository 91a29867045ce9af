"""One path layer for local paths, gs:// and s3:// (fsspec: gcsfs, s3fs).

Object stores have no folders and no rename: a "folder" is a key prefix, `makedirs` does nothing
there, and a file is written whole by one PUT, which the store applies atomically (readers see the
old object or the new one). Local writes keep `files.atomic_write`'s temporary name + fsync +
rename. `create_exclusive` is the one conditional write (S3 If-None-Match: *, GCS
ifGenerationMatch=0, local O_EXCL): the primitive of a workdir lock on a bucket.

Endpoints and credentials come from the environment, read again whenever it changes:
AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_PROFILE,
AWS_REGION for s3; STORAGE_EMULATOR_HOST (a test server; unset for Google Cloud Storage) and
GOOGLE_APPLICATION_CREDENTIALS for gs. `storage_check.check_reachable` says in one line why a store
cannot be used; tensorstore and orbax: see `orbax_storage`.
"""

import contextlib
import logging
import os
import shutil
import sys
from urllib import parse

import fsspec

from jaxpr_gan import files

# etils.epath (orbax's paths) uses tf.io.gfile whenever TensorFlow is installed; gfile has no
# s3:// and cannot be pointed at a GCS test server, so orbax's metadata writes would fail there.
# '0' makes epath use fsspec (gcsfs, s3fs) like this module. epath caches its choice at the first
# path it resolves (any path, local ones too), so the cache is cleared if that already happened.
# setdefault: a user may still choose gfile on purpose.
os.environ.setdefault('EPATH_USE_TF', '0')
# gcsfs 2026.10's default class (ExtendedGcsFileSystem, for zonal buckets) asks each bucket's
# layout over gRPC from storage.googleapis.com whatever STORAGE_EMULATOR_HOST says: offline that
# hangs, on GCS it costs a call per bucket. The plain GCSFileSystem (no zonal buckets) is used.
# Read when gcsfs is imported (fsspec imports it at the first gs:// path, for epath too).
os.environ.setdefault('GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT', 'false')
if 'etils.epath.gpath' in sys.modules:
  with contextlib.suppress(AttributeError):
    sys.modules['etils.epath.gpath']._is_tf_installed.cache_clear()

# gcsfs's zonal-bucket class (where still used, as by epath) logs "Could not determine bucket
# type ..." at WARNING on every call without a Google login: noise around every run's output.
logging.getLogger('gcsfs').setLevel(logging.ERROR)

REMOTE_PREFIXES = files.REMOTE_PREFIXES
is_remote = files.is_remote
_ENV = {  # what the file systems read: a change makes new ones
  's3': tuple(
    'AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY '
    'AWS_SESSION_TOKEN AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION'.split()
  ),
  'gs': ('STORAGE_EMULATOR_HOST', 'GOOGLE_APPLICATION_CREDENTIALS'),
}
_filesystems: dict[tuple, fsspec.AbstractFileSystem] = {}


def join(path, *parts: str) -> str:
  """os.path.join for local paths; '/'-joined keys for gs:// and s3://."""
  if not is_remote(path):
    return os.path.join(str(path), *parts)
  out = str(path).rstrip('/')
  for part in parts:
    if part.strip('/'):
      out += '/' + part.strip('/')
  return out


def absolute(path) -> str:
  """os.path.abspath for local paths; a URL as it is (for messages and records)."""
  return str(path) if is_remote(path) else os.path.abspath(path)


def dirname(path) -> str:
  """The folder holding `path`: os.path.dirname of its absolute path, or the URL's parent key."""
  if not is_remote(path):
    return os.path.dirname(os.path.abspath(path))
  return str(path).rstrip('/').rsplit('/', 1)[0]


def split(url: str) -> tuple[str, str, str]:
  """'s3://bucket/a/b' -> ('s3', 'bucket', 'a/b')."""
  parsed = parse.urlparse(str(url))
  return parsed.scheme, parsed.netloc, parsed.path.lstrip('/')


def s3_endpoint() -> str | None:
  return os.environ.get('AWS_ENDPOINT_URL_S3') or os.environ.get('AWS_ENDPOINT_URL') or None


def aws_region() -> str | None:
  return os.environ.get('AWS_REGION') or os.environ.get('AWS_DEFAULT_REGION') or None


def gcs_emulator() -> str | None:
  host = os.environ.get('STORAGE_EMULATOR_HOST', '')
  if host in ('', 'default'):
    return None
  return host if host.startswith(('http://', 'https://')) else 'http://' + host


def endpoint(protocol: str) -> str:
  if protocol == 's3':
    return s3_endpoint() or f'https://s3.{aws_region() or "us-east-1"}.amazonaws.com'
  return gcs_emulator() or 'https://storage.googleapis.com'


def _new_filesystem(protocol: str, fast: bool) -> fsspec.AbstractFileSystem:
  # No listing cache: other processes (and tensorstore) change the bucket behind our back.
  kwargs = {'skip_instance_cache': True, 'use_listings_cache': False}
  if protocol == 's3':
    kwargs['endpoint_url'] = s3_endpoint()
    if aws_region():
      kwargs['client_kwargs'] = {'region_name': aws_region()}
    if fast:  # one try, short timeouts: check_reachable must answer in seconds
      retries = {'max_attempts': 1, 'mode': 'standard'}
      kwargs['config_kwargs'] = dict(connect_timeout=3, read_timeout=10, retries=retries)
  elif gcs_emulator():
    # The test server takes any token; 'anon' skips the metadata-server lookups of a
    # machine outside Google Cloud, which take seconds offline.
    kwargs.update(endpoint_url=gcs_emulator(), token='anon')
  if protocol == 'gs':  # the plain class even if gcsfs was imported before this module
    from gcsfs import core  # noqa: PLC0415  (optional: only gs:// paths need it)

    return core.GCSFileSystem(**kwargs)
  fs = fsspec.filesystem(protocol, **kwargs)
  if fast:
    fs.retries = 1  # s3fs's own retry loop, around botocore's
  return fs


def filesystem(path, fast: bool = False) -> tuple[fsspec.AbstractFileSystem, str]:
  """(fsspec file system, path inside it) for a local path or a gs:// or s3:// URL. Remote
  file systems are made again when the environment variables they read change. fast: one try
  with short timeouts (for `storage_check`)."""
  if not is_remote(path):
    return fsspec.filesystem('file'), os.path.abspath(str(path))
  protocol = split(path)[0]
  # Per process: fsspec's async file systems refuse to run in a forked child (grain workers).
  key = (protocol, fast, os.getpid()) + tuple(os.environ.get(name) for name in _ENV[protocol])
  if key not in _filesystems:
    _filesystems[key] = _new_filesystem(protocol, fast)
  fs = _filesystems[key]
  return fs, fs._strip_protocol(str(path))


def exists(path) -> bool:
  if not is_remote(path):
    return os.path.exists(path)
  fs, p = filesystem(path)
  return fs.exists(p)


def isdir(path) -> bool:
  """A local folder, or a key prefix holding at least one object."""
  if not is_remote(path):
    return os.path.isdir(path)
  fs, p = filesystem(path)
  return fs.isdir(p)


def listdir(path) -> list[str]:
  """Sorted names directly under `path` (files and folders); FileNotFoundError if none."""
  if not is_remote(path):
    return sorted(os.listdir(path))
  fs, p = filesystem(path)
  names = {e.rstrip('/').rsplit('/', 1)[-1] for e in fs.ls(p, detail=False)}
  names.discard('')
  if not names:
    raise FileNotFoundError(f'no such folder: {path}')
  return sorted(names)


def makedirs(path) -> None:
  """os.makedirs(exist_ok=True); nothing on object stores, where folders are key prefixes."""
  if not is_remote(path):
    os.makedirs(path, exist_ok=True)


def read_bytes(path) -> bytes:
  if not is_remote(path):
    with open(path, 'rb') as f:
      return f.read()
  fs, p = filesystem(path)
  return fs.cat_file(p)


def read_text(path) -> str:
  return read_bytes(path).decode('utf-8')


def write_bytes(path, data: bytes) -> None:
  """The whole file or nothing: locally a temporary name, fsync and rename; remotely one PUT."""
  if not is_remote(path):
    files.write_bytes(str(path), data)
    return
  fs, p = filesystem(path)
  fs.pipe_file(p, data)


def write_text(path, text: str) -> None:
  write_bytes(path, text.encode('utf-8'))


def create_exclusive(path, data: bytes) -> bool:
  """Creates `path` holding `data` unless it exists: True if this call created it. Atomic on the
  server (S3 If-None-Match: *, GCS ifGenerationMatch=0, local O_CREAT|O_EXCL), so of many
  callers exactly one wins."""
  if not is_remote(path):
    try:
      fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      return False
    try:
      os.write(fd, data)
      os.fsync(fd)
    finally:
      os.close(fd)
    return True
  fs, p = filesystem(path)
  try:
    with fs.open(p, 'xb') as f:
      f.write(data)
  except FileExistsError:
    return False
  return True


def remove(path) -> None:
  """Deletes the file `path`; nothing if it is not there (object-store semantics)."""
  if not is_remote(path):
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)
    return
  fs, p = filesystem(path)
  with contextlib.suppress(FileNotFoundError):
    fs.rm_file(p)


def rmtree(path) -> None:
  """Deletes a folder (every key under the prefix) with all it holds; nothing if absent."""
  if not is_remote(path):
    shutil.rmtree(path, ignore_errors=not os.path.exists(path))
    return
  if not split(path)[2].strip('/'):
    raise ValueError(f'refusing to delete a whole bucket: {path}')
  fs, p = filesystem(path)
  with contextlib.suppress(FileNotFoundError):
    fs.rm(p.rstrip('/') + '/', recursive=True)


def _sizes(path) -> dict[str, int]:
  """{path relative to the folder `path`: size} of every file under it ({} if absent)."""
  if not is_remote(path):
    out = {}
    for folder, _, names in os.walk(path):
      for name in names:
        if name.startswith('.') and '.tmp-' in name:  # a killed copy's temporary file
          continue
        full = os.path.join(folder, name)
        out[os.path.relpath(full, path).replace(os.sep, '/')] = os.path.getsize(full)
    return out
  fs, p = filesystem(path)
  p = p.rstrip('/')
  try:
    found = fs.find(p, detail=True)
  except FileNotFoundError:
    return {}
  return {
    k[len(p) + 1 :]: int(v.get('size') or 0)
    for k, v in found.items()
    if k.startswith(p + '/') and v.get('type') != 'directory' and not k.endswith('/')
  }


def _todo(src, dst) -> list[str]:
  """The files of folder `src` that `dst` lacks or holds at another size."""
  found = _sizes(src)
  if not found and (is_remote(src) or not os.path.isdir(src)):
    raise FileNotFoundError(f'no files under {src}')
  have = {} if dst is None else _sizes(dst)
  return sorted(k for k, size in found.items() if have.get(k) != size)


def files_under(path) -> list[str]:
  """Sorted paths, relative to the folder `path`, of every file under it ([] if none)."""
  return sorted(_sizes(path))


def copy_folder(src, dest) -> None:
  """Copies every file under the folder `src` to the same names under `dest` (same store): on
  a bucket one server-side copy per object, since there is no rename."""
  if not is_remote(src):
    shutil.copytree(src, dest)
    return
  fs, p = filesystem(src)
  _, q = filesystem(dest)
  rels = files_under(src)
  fs.copy([f'{p.rstrip("/")}/{r}' for r in rels], [f'{q.rstrip("/")}/{r}' for r in rels])


def put_folder(local_dir: str, dest, only_changed: bool = True) -> list[str]:
  """Copies the files of `local_dir` to the folder `dest` (any store), with `only_changed`
  skipping files of equal size there (a TensorBoard mirror uploads only what grew). -> the
  relative paths copied."""
  todo = _todo(local_dir, dest) if only_changed else _todo(local_dir, None)
  if not is_remote(dest):
    for rel in todo:
      target = os.path.join(dest, rel)
      os.makedirs(os.path.dirname(target), exist_ok=True)
      tmp = files.temporary_name(target)
      shutil.copyfile(os.path.join(local_dir, rel), tmp)
      os.replace(tmp, target)
    return todo
  if todo:
    fs, p = filesystem(dest)
    fs.put([os.path.join(local_dir, r) for r in todo], [f'{p.rstrip("/")}/{r}' for r in todo])
  return todo


def get_folder(src, local_dir: str) -> list[str]:
  """Copies the files of the folder `src` into `local_dir`, skipping files already there with
  the same size (a data cache fetched again costs one listing). Each file appears whole (a
  temporary name, then a rename). -> the relative paths copied."""
  if not is_remote(src):
    return put_folder(src, local_dir)
  todo = _todo(src, local_dir)
  if not todo:
    return todo
  fs, p = filesystem(src)
  targets = [os.path.join(local_dir, r) for r in todo]
  tmps = [files.temporary_name(t) for t in targets]
  for t in targets:
    os.makedirs(os.path.dirname(t), exist_ok=True)
  try:
    fs.get([f'{p.rstrip("/")}/{r}' for r in todo], tmps)
    for tmp, target in zip(tmps, targets):
      os.replace(tmp, target)
  finally:
    for tmp in tmps:
      with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)
  return todo
