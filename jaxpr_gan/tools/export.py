"""A generator in one file that runs without this code base: jax.export + its weights.

  python -m jaxpr_gan.tools.export --workdir workdirs/stargan_quick --out stargan_quick.jaxgen

The file is a NumPy .npz archive holding
  function   the serialized `jax.export.Exported` of inference.translate_fn (StableHLO, any batch
             size, lowered for CPU and, where this JAX can, CUDA and TPU too)
  meta       JSON: class names, image size, normalisation, family, model, signature, source run
  param_<i>  the generator's weights, in the order the function takes them
and is loaded with jax and numpy alone (README, "Use a trained model"):

  z = np.load('stargan_quick.jaxgen', allow_pickle=False)
  meta = json.loads(z['meta'].tobytes())
  fn = jax.export.deserialize(z['function'].tobytes())
  params = [z[f'param_{i}'] for i in range(meta['num_params'])]
  image, mask = fn.call(params, x, target, rho, reference)  # x = uint8 / 127.5 - 1

`--out`'s folder must exist and be writable: export checks it before restoring the run, and says
to create a missing folder rather than making one from a mistyped path. The file is written
atomically (`files.atomic_write`): an export killed part-way leaves the previous file intact.
`load` turns a damaged file (truncated, garbled, empty, not an export) into one `BadInput` line.
"""

import json
import os
import zipfile
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan import images
from jaxpr_gan import inference
from jaxpr_gan import storage
from jaxpr_gan.evaluation import restore as restore_lib
from jaxpr_gan.nn import conv

FORMAT = 'jaxpr_gan.exported_generator/1'
SIGNATURE = (
  'translate(params, x f32[B,H,W,3], target i32[B], rho f32[B], reference '
  'f32[B,H,W,3]) -> (image f32[B,H,W,3], mask f32[B,H,W])'
)
_PLATFORMS = (('cpu', 'cuda', 'tpu'), ('cpu',))
_META_KEYS = ('class_names', 'image_size', 'family', 'model', 'has_intensity', 'has_mask')
# What reading a damaged archive raises (np.load, zipfile, zlib, json, the .npy header parser).
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error)


def _exported(fn, params_flat, size: int, conv_impl: str):
  b = jax.export.symbolic_shape('b')[0]
  img = jax.ShapeDtypeStruct((b, size, size, 3), jnp.float32)
  vec_i = jax.ShapeDtypeStruct((b,), jnp.int32)
  vec_f = jax.ShapeDtypeStruct((b,), jnp.float32)
  specs = [jax.ShapeDtypeStruct(p.shape, p.dtype) for p in params_flat]
  last = None
  for platforms in _PLATFORMS:  # accelerators when this JAX can lower for them
    try:
      traced = conv.traced_with(fn, conv_impl, platforms)
      return jax.export.export(jax.jit(traced), platforms=platforms)(specs, img, vec_i, vec_f, img)
    except Exception as e:  # pylint: disable=broad-except
      last = e
  raise last


def export_run(workdir: str, out_path: str, step: int | None = None) -> dict:
  """Writes the run's generator (EMA weights when kept) to `out_path`; -> its metadata.

  `out_path`'s folder is checked first (see the module docstring): a missing or unwritable one
  is an error before the run is restored.
  """
  if os.path.isdir(out_path):
    raise errors.BadInput(f'--out {out_path} is a folder; give a file name, e.g. model.jaxgen')
  files.check_folder(os.path.dirname(out_path), f'--out {out_path}', may_create=False)
  run = restore_lib.restore(workdir, step)
  config, objective, g_params, class_names, step = (
    run.config,
    run.objective,
    run.g_params,
    run.class_names,
    run.step,
  )
  leaves, treedef = jax.tree.flatten(jax.device_get(g_params))
  translate = inference.translate_fn(objective)

  def flat_fn(params_flat, x, target, rho, reference):
    return translate(jax.tree.unflatten(treedef, params_flat), x, target, rho, reference)

  size = int(config.data.image_size)
  exported = _exported(flat_fn, leaves, size, config.conv_impl)
  meta = {
    'format': FORMAT,
    'class_names': list(class_names),
    'image_size': size,
    'normalisation': images.NORMALISATION,
    'family': objective.family,
    'model': config.model,
    **inference.describe(objective, g_params, config),
    'signature': SIGNATURE,
    'num_params': len(leaves),
    'platforms': list(exported.platforms),
    'source': {'workdir': storage.absolute(workdir), 'step': int(step)},
  }
  arrays = {f'param_{i}': np.asarray(p) for i, p in enumerate(leaves)}
  # A file object: np.savez would append '.npz' to a name. Atomic: a kill keeps the old file.
  with files.atomic_write(out_path, 'wb') as f:
    np.savez(
      f,
      function=np.frombuffer(bytes(exported.serialize()), np.uint8),
      meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
      **arrays,
    )
  return meta


def _damaged(path: str, what: str) -> errors.BadInput:
  return errors.BadInput(
    f'{path} is damaged or not a generator from jaxpr_gan.tools.export ({what}); export it again'
  )


def _read(path: str) -> tuple[dict, bytes, list[np.ndarray]]:
  """-> (meta, serialized function, weights) of an exported file, read whole and closed."""
  if not os.path.isfile(path):
    raise errors.NotFound(f'no such exported file: {path}')
  if os.path.getsize(path) == 0:
    raise _damaged(path, 'empty file, 0 bytes')
  if not zipfile.is_zipfile(path):
    raise _damaged(path, 'not a zip (.npz) archive: truncated, or another kind of file')
  try:
    with np.load(path, allow_pickle=False) as z:
      meta = json.loads(z['meta'].tobytes())
      if not isinstance(meta, dict):
        raise ValueError(f'meta is {type(meta).__name__}, not a JSON object')
      if meta.get('format') != FORMAT:
        raise errors.BadInput(f'{path} has format {meta.get("format")!r}, expected {FORMAT!r}')
      missing = [k for k in (*_META_KEYS, 'num_params', 'source') if k not in meta]
      if missing:
        raise KeyError(f'meta lacks {", ".join(missing)}')
      # Every member read to its end: zipfile checks its CRC-32, so flipped bytes are caught.
      function = z['function'].tobytes()
      params = [z[f'param_{i}'] for i in range(int(meta['num_params']))]
  except errors.UserError:
    raise
  except _READ_ERRORS as e:
    raise _damaged(path, f'{type(e).__name__}: {e}') from e
  return meta, function, params


def load(path: str) -> inference.Translator:
  """An exported file as a Translator (what `edit` runs); needs jax and numpy only.

  A damaged file is one `errors.BadInput` naming it and what is wrong, never a traceback.
  """
  meta, function, params = _read(path)
  try:
    exported = jax.export.deserialize(bytearray(function))
    exported.mlir_module()  # parses the StableHLO now (ms), not at the first call
  except Exception as e:  # pylint: disable=broad-except  # flatbuffers: any error on bad bytes
    raise _damaged(path, f'its function does not deserialize: {type(e).__name__}: {e}') from e
  params = [jnp.asarray(p) for p in params]
  fn = lambda x, target, rho, ref: exported.call(params, x, target, rho, ref)
  return inference.Translator(
    fn, **{k: meta[k] for k in _META_KEYS}, info={'file': path, **meta['source']}
  )


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  meta = export_run(f.workdir, f.out, f.step)
  print(
    f'wrote {f.out}: {meta["model"]} generator, {meta["image_size"]} px, classes '
    f'{meta["class_names"]}, platforms {meta["platforms"]}'
  )


if __name__ == '__main__':
  from absl import flags as _flags  # pylint: disable=g-import-not-at-top

  from jaxpr_gan import checkpointing  # pylint: disable=g-import-not-at-top
  from jaxpr_gan import cli  # pylint: disable=g-import-not-at-top

  _flags.DEFINE_string('workdir', None, 'Run directory to export from.')
  _flags.DEFINE_string('out', None, 'File to write (e.g. model.jaxgen).')
  _flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
  _flags.mark_flags_as_required(['workdir', 'out'])
  checkpointing.quiet_orbax_logging()
  cli.run(main)
