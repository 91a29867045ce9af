"""`check_reachable`: whether a gs:// or s3:// path can be used, in seconds and in one line.

A run checks its workdir (and an evaluation its checkpoints, a data pipeline its prepared set)
before any work: an endpoint that refuses connections or has a mistyped name, a bucket that does
not exist and refused credentials each give a one-line `errors.UserError` naming the URL and the
setting that fixes it, instead of a traceback at the first checkpoint, or minutes of retries.
"""

import socket
from urllib import parse

from fsspec import asyn

from jaxpr_gan import errors
from jaxpr_gan import storage


class StorageUnreachable(errors.UserError):
  """The storage server of a gs:// or s3:// path does not answer."""


class BucketNotFound(errors.NotFound):
  """The bucket of a gs:// or s3:// path does not exist."""


class AccessDenied(errors.UserError):
  """The storage server refuses the credentials (or finds none)."""


def _one_line(e: BaseException) -> str:
  return ' '.join(str(e).split())[:200] or type(e).__name__


def _unreachable(url: str, protocol: str, endpoint: str, why: str) -> StorageUnreachable:
  if protocol == 's3':
    fix = 'set AWS_ENDPOINT_URL to the S3 server (unset for AWS itself)'
  elif storage.gcs_emulator():
    fix = 'STORAGE_EMULATOR_HOST names this GCS test server: start it, fix it or unset it'
  else:
    fix = 'check the network (STORAGE_EMULATOR_HOST would name a GCS test server)'
  return StorageUnreachable(f'cannot reach {url}: {endpoint} {why}; {fix}')


def _probe_tcp(url: str, protocol: str, timeout: float) -> None:
  endpoint = storage.endpoint(protocol)
  parsed = parse.urlparse(endpoint)
  port = parsed.port or (443 if parsed.scheme == 'https' else 80)
  try:
    socket.create_connection((parsed.hostname, port), timeout=min(timeout, 5)).close()
  except socket.gaierror as e:
    raise _unreachable(
      url, protocol, endpoint, f'has an unknown host name ({e.strerror})'
    ) from None
  except ConnectionRefusedError:
    raise _unreachable(url, protocol, endpoint, 'refuses connections') from None
  except OSError as e:
    raise _unreachable(url, protocol, endpoint, f'does not answer ({_one_line(e)})') from None


async def _list_one(fs, protocol: str, bucket: str, key: str) -> None:
  if protocol == 's3':
    await fs._call_s3('list_objects_v2', Bucket=bucket, Prefix=key, MaxKeys=1)
  else:
    await fs._call('GET', 'b/{}/o', bucket, prefix=key, maxResults=1, json_out=True)


_NO_CREDENTIALS = ('NoCredentialsError', 'PartialCredentialsError', 'DefaultCredentialsError')


def _refused(e: Exception) -> bool:
  """Whether `e` (s3fs: PermissionError; gcsfs: OSError 'Forbidden', HttpError 401) says the
  credentials are missing or refused."""
  if isinstance(e, PermissionError) or str(e).startswith('Forbidden'):
    return True
  return getattr(e, 'code', None) in (401, 403) or type(e).__name__ in _NO_CREDENTIALS


def _denied(url: str, protocol: str, bucket: str, why: str) -> AccessDenied:
  if protocol == 's3':
    fix = 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)'
  else:
    fix = (
      'set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file or run '
      '`gcloud auth application-default login`'
    )
  return AccessDenied(
    f'{url}: the server refuses the credentials ({why}); {fix} for an account that may read '
    f'and write bucket {bucket}'
  )


def check_reachable(path, timeout: float = 10.0) -> None:
  """Nothing for a local path; for gs:// and s3:// a one-line UserError within about `timeout`
  seconds unless the server answers, the bucket exists and the credentials may list it: a run
  learns at start, not at its first checkpoint, that its workdir cannot be written."""
  if not storage.is_remote(path):
    return
  url = str(path)
  protocol, bucket, key = storage.split(url)
  if not bucket:
    raise errors.BadInput(f'{url} names no bucket: write {protocol}://<bucket>/<folder>')
  _probe_tcp(url, protocol, timeout)
  fs, _ = storage.filesystem(url, fast=True)
  try:
    asyn.sync(fs.loop, _list_one, fs, protocol, bucket, key, timeout=timeout)
  except asyn.FSTimeoutError:
    why = f'did not answer in {timeout:g} s'
    raise _unreachable(url, protocol, storage.endpoint(protocol), why) from None
  except FileNotFoundError:
    where = storage.endpoint(protocol)
    raise BucketNotFound(
      f'{url}: bucket {bucket} does not exist at {where}; create it or fix the path'
    ) from None
  except Exception as e:  # noqa: BLE001  (the credential errors of botocore, gcsfs, google-auth)
    if _refused(e):
      raise _denied(url, protocol, bucket, _one_line(e)) from None
    raise
