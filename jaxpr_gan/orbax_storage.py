"""tensorstore and orbax checkpoints on gs:// and s3:// (and local paths, unchanged).

gs:// works in orbax as it is (through tensorstore's gcs driver and epath on gcsfs). s3:// needs
`enable_orbax_s3`, and both need `AtomicityOptions(COMMIT_FILE)` (`atomicity_options`): a step is
written in place and counts once its `commit_success.txt` exists, because an object store cannot
rename a folder (s3fs fails half-way, gcsfs copies object by object).
"""

import os

from absl import logging
import orbax.checkpoint as ocp

from jaxpr_gan import storage  # sets EPATH_USE_TF (see there)

# The orbax release whose private names `enable_orbax_s3` replaces (tests/test_storage.py).
ORBAX_S3_TESTED = '0.12.8'
_enabled = False


def tensorstore_kvstore(path) -> dict:
  """tensorstore's kvstore spec of a local path, gs:// or s3:// URL (its key kept as given). For
  s3 the spec carries the endpoint and region of the environment: tensorstore's s3 driver
  ignores AWS_ENDPOINT_URL and, without 'endpoint', waits for AWS itself."""
  if not storage.is_remote(path):
    return {'driver': 'file', 'path': os.path.abspath(path) + '/' * str(path).endswith('/')}
  protocol, bucket, key = storage.split(path)
  if protocol == 'gs':
    return {'driver': 'gcs', 'bucket': bucket, 'path': key}
  spec = {'driver': 's3', 'bucket': bucket, 'path': key}
  if storage.s3_endpoint():
    spec['endpoint'] = storage.s3_endpoint()
  if storage.aws_region():
    spec['aws_region'] = storage.aws_region()
  return spec


def atomicity_options(path) -> ocp.options.AtomicityOptions | None:
  """For `CheckpointManagerOptions(atomicity_options=...)`: COMMIT_FILE on object stores (no
  rename), None (orbax's default, an atomic folder rename) on local disks."""
  if not storage.is_remote(path):
    return None
  return ocp.options.AtomicityOptions(mode=ocp.options.AtomicityMode.COMMIT_FILE)


def enable_orbax_s3() -> None:
  """Lets orbax save and restore arrays under s3:// (idempotent; for every path of the process).

  orbax 0.12.8 gives tensorstore its gcs driver for gs:// and the file driver for every other
  path, after `os.path.normpath` has made 's3://b/k' into 's3:/b/k' (then: "Checkpoint path
  should be absolute"). This replaces three private names of
  orbax.checkpoint._src.serialization.tensorstore_utils so that s3:// paths get tensorstore's
  s3 driver with `tensorstore_kvstore`'s spec: fragile by nature, so it checks that the names
  still exist and warns on another orbax release; tests/test_storage.py saves and restores
  through it. Another orbax release may support s3 itself: then drop this.
  """
  global _enabled
  if _enabled:
    return
  from orbax.checkpoint._src.serialization import tensorstore_utils as tsu  # noqa: PLC0415

  gcs = tsu.gcs_utils
  names = (tsu, '_use_gcs_driver'), (tsu, '_normalize_path'), (gcs, 'get_kvstore_for_gcs')
  for module, name in names:
    if not callable(getattr(module, name, None)):
      raise RuntimeError(
        f'orbax {ocp.__version__} has no {module.__name__}.{name}: enable_orbax_s3 was written '
        f'for orbax {ORBAX_S3_TESTED}; update it for this release'
      )
  if ocp.__version__ != ORBAX_S3_TESTED:
    logging.warning(
      'enable_orbax_s3 was tested with orbax %s, not %s', ORBAX_S3_TESTED, ocp.__version__
    )
  use_gcs, normalize, kvstore = tsu._use_gcs_driver, tsu._normalize_path, gcs.get_kvstore_for_gcs

  def normalize_s3(path: str) -> str:
    out = normalize(path)
    return 's3://' + out[4:] if out.startswith('s3:/') and not out.startswith('s3://') else out

  tsu._normalize_path = normalize_s3
  tsu._use_gcs_driver = lambda directory: directory.startswith('s3://') or use_gcs(directory)
  gcs.get_kvstore_for_gcs = lambda p: (
    tensorstore_kvstore(p) if p.startswith('s3://') else kvstore(p)
  )
  _enabled = True
