"""How long FID (and KID, IS) on 10,000 images takes here: python -m jaxpr_gan.tools.bench_fid

Times the jit-compiled, batched FID Inception on --images uint8 images (its speed does not
depend on the weights' values, so random ones serve and no file is needed), and the statistics
on 10,000 x 2048 features: the Frechet distance (a 2048 x 2048 matrix square root), KID (100
subsets of 1000) and IS. Prints the figures and the time for 10,000 generated images (plus as
many real ones the first time, before their features are cached), and appends them to
docs/benchmarks.md (--out= to skip).
"""

import os
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from jaxpr_gan import files
from jaxpr_gan import tools
from jaxpr_gan.evaluation.metrics import distribution
from jaxpr_gan.evaluation.metrics import inception
from jaxpr_gan.tools import bench

_IMAGES = flags.DEFINE_integer('images', 256, 'Images whose features are timed.')
_BATCH = flags.DEFINE_integer('batch_size', 64, 'Batch of the feature extraction.')
_SIZE = flags.DEFINE_integer('size', 128, 'Image size before the resize to 299.')
_OUT = flags.DEFINE_string(
  'out', os.path.join(tools.ROOT, 'docs', 'benchmarks.md'), 'Markdown file to append to.'
)


def run(images: int, batch_size: int, size: int) -> dict:
  params = jax.jit(inception.FIDInception().init)(
    jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 3))
  )['params']
  features = inception.features_fn()
  batch = np.random.default_rng(0).integers(0, 256, (batch_size, size, size, 3), np.uint8)
  start = time.perf_counter()
  jax.block_until_ready(features(params, batch))
  compile_s = time.perf_counter() - start
  num_batches = max(1, images // batch_size)
  start = time.perf_counter()
  for _ in range(num_batches):
    jax.block_until_ready(features(params, batch))
  per_image = (time.perf_counter() - start) / (num_batches * batch_size)
  rng = np.random.default_rng(1)
  f1 = rng.normal(size=(10_000, 2048)).astype(np.float32)
  f2 = (rng.normal(size=(10_000, 2048)) * 1.1 + 0.1).astype(np.float32)
  start = time.perf_counter()
  distribution.frechet_distance_from_features(f1, f2)
  frechet_s = time.perf_counter() - start
  start = time.perf_counter()
  distribution.kernel_inception_distance(f1, f2)
  kid_s = time.perf_counter() - start
  start = time.perf_counter()
  distribution.inception_score(rng.normal(size=(10_000, 1008)))
  is_s = time.perf_counter() - start
  return {
    'compile_s': compile_s,
    'images_per_s': 1.0 / per_image,
    'features_10k_s': 10_000 * per_image,
    'frechet_s': frechet_s,
    'kid_s': kid_s,
    'is_s': is_s,
    'timed_images': num_batches * batch_size,
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = run(_IMAGES.value, _BATCH.value, _SIZE.value)
  total = f['features_10k_s'] + f['frechet_s'] + f['kid_s'] + f['is_s']
  text = (
    f'\nFID on 10,000 images ({time.strftime("%Y-%m-%d")}, {bench.machine()}): Inception '
    f'features {f["images_per_s"]:.1f} images/s ({f["timed_images"]} timed, batch '
    f'{_BATCH.value}, {_SIZE.value} px inputs; compile {f["compile_s"]:.0f} s), so '
    f'{f["features_10k_s"]:.0f} s for 10,000 generated images (and as long again for the '
    f'real ones the first time); Frechet distance {f["frechet_s"]:.1f} s, KID (100 x 1000) '
    f'{f["kid_s"]:.1f} s, IS {f["is_s"]:.1f} s: {total / 60:.1f} min with the real features '
    f'cached, {(total + f["features_10k_s"]) / 60:.1f} min without.\n'
  )
  print(text)
  if _OUT.value:
    record(_OUT.value, text.strip())
    print(f'recorded in {_OUT.value}')


SECTION = '## FID on 10,000 images'


def record(path: str, line: str) -> None:
  """Adds `line` to the FID section of `path`, made before the step-time table if new (the
  table stays last, so bench rows keep appending to it)."""
  with open(path) as f:
    text = f.read()
  if SECTION not in text:
    table = text.find('## Table')
    table = len(text) if table < 0 else table
    text = (
      text[:table]
      + f'{SECTION}\n\n`python -m jaxpr_gan.tools.bench_fid` (newest last).\n\n'
      + text[table:]
    )
  end = text.find('\n## ', text.find(SECTION) + len(SECTION))
  end = len(text) if end < 0 else end
  text = text[:end].rstrip('\n') + '\n\n' + line + '\n' + text[end:]
  files.write_text(path, text)


if __name__ == '__main__':
  from jaxpr_gan import cli  # pylint: disable=g-import-not-at-top

  cli.run(main)
