"""Local S3 and GCS servers for the tests, started by the fixtures (nobody starts them by hand).

`storage_servers` (session) starts moto's S3 server and gcp-storage-emulator in threads of the
test process on free localhost ports, creates one bucket in each, points the environment at them
(boto3/s3fs, gcsfs, tensorstore, array_record) and stops them at the end. `store` runs a test on
a fresh folder of each store: a local tmp_path, gs:// and s3://.

A test module uses them with `pytest_plugins = ('tests.storage_servers',)`.
"""

from collections.abc import Iterator
import contextlib
import http
import logging
import socket
import sys
import uuid

import pytest

BUCKET = 'jaxpr-gan-test'
_patched = False


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _object_of(storage, request, name=None):
  try:
    return storage.get_file_obj(request.params['bucket_name'], name or request.params['object_id'])
  except Exception:  # noqa: BLE001  (the emulator's NotFound, or no such parameter)
    return None


def _with_generation(handler, objects):
  """Downloads carry x-goog-generation, as real GCS sends: tensorstore's gcs driver (and orbax's
  restore) fails with 'Malformed StorageGeneration' without it."""

  def wrapper(request, response, storage, *args, **kwargs):
    handler(request, response, storage, *args, **kwargs)
    media = handler is objects.download or request.query.get('alt', [''])[0] == 'media'
    found = _object_of(storage, request) if media else None
    if found is not None and int(response.status) in (200, 206):
      response['x-goog-generation'] = str(found['generation'])
      response['x-goog-metageneration'] = str(found.get('metageneration', '1'))

  return wrapper


def _with_precondition(handler):
  """Uploads honour ifGenerationMatch (0: only if absent) with 412, as real GCS does: the
  emulator ignores it, and create_exclusive (a workdir lock) depends on it."""

  def wrapper(request, response, storage, *args, **kwargs):
    want = request.query.get('ifGenerationMatch', [None])[0]
    if want is not None:
      name = request.query.get('name', [None])[0]
      if name is None and isinstance(request.data, dict):
        name = request.data.get('meta', request.data).get('name')
      found = _object_of(storage, request, name)
      generation = None if found is None else str(found['generation'])
      if generation != (None if want == '0' else want):
        response.status = http.HTTPStatus.PRECONDITION_FAILED
        response.json({'error': {'code': 412, 'message': 'conditionNotMet'}})
        return None
    return handler(request, response, storage, *args, **kwargs)

  return wrapper


def _patch_gcs_emulator() -> None:
  """gcp-storage-emulator 2026.7.19 behaving as GCS does where our code depends on it. (Only one
  request at a time is served: its storage is not thread-safe.)"""
  global _patched
  if _patched:
    return
  from gcp_storage_emulator import server  # noqa: PLC0415
  from gcp_storage_emulator.handlers import objects  # noqa: PLC0415

  for _, handlers in server.HANDLERS:
    for method, handler in list(handlers.items()):
      if handler in (objects.download, objects.get):
        handlers[method] = _with_generation(handler, objects)
      elif handler is objects.insert:
        handlers[method] = _with_precondition(handler)
  _patched = True


def _start_s3():
  import boto3  # noqa: PLC0415
  from moto.server import ThreadedMotoServer  # noqa: PLC0415

  s3 = ThreadedMotoServer(ip_address='127.0.0.1', port=free_port(), verbose=False)
  s3.start()
  host, port = s3.get_host_and_port()
  url = f'http://{host}:{port}'
  boto3.client(
    's3',
    endpoint_url=url,
    region_name='us-east-1',
    aws_access_key_id='testing',
    aws_secret_access_key='testing',
  ).create_bucket(Bucket=BUCKET)
  return s3, url


def _start_gcs():
  from gcp_storage_emulator import server  # noqa: PLC0415

  _patch_gcs_emulator()
  # It logs every 404 (normal: orbax and tensorstore probe for files) as an ERROR.
  logging.getLogger('gcp_storage_emulator').setLevel(logging.CRITICAL)
  port = free_port()
  gcs = server.create_server('127.0.0.1', port, in_memory=True, default_bucket=BUCKET)
  gcs.start()
  httpd = gcs._api._httpd
  report = httpd.handle_error

  def handle_error(request, address):  # a client that closed early is no error of the server
    if not isinstance(sys.exc_info()[1], ConnectionError):
      report(request, address)

  httpd.handle_error = handle_error
  return gcs, f'http://127.0.0.1:{port}'


def environment(s3_url: str, gcs_url: str) -> dict[str, str]:
  """What points boto3/s3fs/tensorstore at the S3 server and gcsfs, google-cloud-storage,
  tensorstore and array_record at the GCS server (also for the tests' child processes)."""
  return {
    'AWS_ACCESS_KEY_ID': 'testing',
    'AWS_SECRET_ACCESS_KEY': 'testing',
    'AWS_REGION': 'us-east-1',
    'AWS_DEFAULT_REGION': 'us-east-1',
    'AWS_ENDPOINT_URL': s3_url,
    'AWS_CONFIG_FILE': '/dev/null',  # no user profile; tensorstore logs its absence otherwise
    'AWS_SHARED_CREDENTIALS_FILE': '/dev/null',
    'STORAGE_EMULATOR_HOST': gcs_url,
    'TENSORSTORE_GCS_HTTP_URL': gcs_url,
    'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'test',
    'CLOUD_STORAGE_EMULATOR_ENDPOINT': gcs_url,
    'GOOGLE_CLOUD_PROJECT': 'test',
  }


@pytest.fixture(scope='session')
def storage_servers() -> Iterator[dict[str, str]]:
  """{'gs': 'gs://<bucket>', 's3': 's3://<bucket>', 'env': ...}: both servers running, the
  environment pointing at them; both stop and the environment is restored at the end."""
  with contextlib.ExitStack() as stack:
    s3, s3_url = _start_s3()
    stack.callback(s3.stop)
    gcs, gcs_url = _start_gcs()
    stack.callback(gcs.stop)
    patch = stack.enter_context(pytest.MonkeyPatch.context())
    for name in ('AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_ENDPOINT_URL_S3'):
      patch.delenv(name, raising=False)
    env = environment(s3_url, gcs_url)
    for name, value in env.items():
      patch.setenv(name, value)
    yield {'gs': f'gs://{BUCKET}', 's3': f's3://{BUCKET}', 'env': env}


@pytest.fixture(params=['local', 'gs', 's3'])
def store(request, tmp_path) -> str:
  """A new, empty folder on each store in turn: a tmp_path, then gs:// and s3:// keys."""
  if request.param == 'local':
    return str(tmp_path / 'store')
  servers = request.getfixturevalue('storage_servers')
  return f'{servers[request.param]}/{uuid.uuid4().hex[:12]}'
