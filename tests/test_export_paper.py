"""The exported file at every model's paper size, called with a batch size the export never saw.

tests/test_export_edit.py exports tiny configs; the paper's channel counts and depths are what
decide the convolution paths (the CPU fast path's Winograd gate looks at the channels and at the
batch, here symbolic). Each model's run is a fresh initialisation of its paper config. The image
is smaller than the paper's where the generator's parameters do not depend on it and the config
validation allows it (the conditional models' D halves it 6 times: 64 px; CycleGAN's 'basic' D
needs a multiple of 16); 2CET-GAN's widths and depth follow the image size, so it stays at 128.
"""

import functools
import importlib
import os

import jax
import numpy as np
import pytest

from jaxpr_gan import config_validation
from jaxpr_gan import images
from jaxpr_gan import inference
from jaxpr_gan import registry
from jaxpr_gan.evaluation import restore
from jaxpr_gan.tools import export
from jaxpr_gan.training import state as state_lib
from tests import reference_values

EXPRESSIONS = ['neutral', 'happy', 'sad', 'angry', 'surprised', 'disgusted', 'fearful']
# model -> (image size here, class names as many as the paper config's, generator parameters).
CASES = {
  'stargan': (64, EXPRESSIONS[:5], 8_430_528),  # docs/using.md: StarGAN's official G
  'sargan': (64, EXPRESSIONS, 3_014_145),
  'mmagan': (64, EXPRESSIONS, 28_161_266),
  'dcam': (64, EXPRESSIONS[1:5], 18_918_593),
  'cyclegan': (16, ['photo', 'anime'], 22_756_358),  # G_a2b and G_b2a, ResNet-9
  'twocet': (128, ['neutral', 'emotional'], 54_109_859),  # official G + E: 33,361,667 + 20,748,192
}
BATCH = 3  # the export's batch is symbolic: any size, none of them seen
# Both paths run XLA:CPU with the CPU fast path's convolutions (`from_run` for the CPU backend,
# the export through lax.platform_dependent); two separately compiled programs may fuse and sum
# in another order: a few float32 ulps per layer (measured at most 1.3e-6, DCAM-GAN; 5.5e-6 for
# 2CET-GAN, largest output 3.6, with the Winograd gate shut). Relative to the largest output, at
# least 1.
RTOL = 1e-5
# Except where the framework's 3 images pass the Winograd gate (256 tiles of a 256-channel map)
# while the symbolic batch keeps the direct sums: 2CET-GAN's 64 px maps. F(4x4, 3x3) is within
# 1.7e-5 of the direct sums per layer (docs/benchmarks.md); measured 1.3e-5 over the network.
RTOL_WINOGRAD = {'twocet': 5e-5}


def _paper_config(model: str, tmp_path):
  config = importlib.import_module(f'configs.{model}').get_config('')
  if model == 'dcam':  # the paper's contextual loss reads ImageNet VGG19 weights: seeded ones
    vgg_file = reference_values._vgg_file  # pylint: disable=protected-access
    config.loss.vgg19_weights = vgg_file(str(tmp_path))
  return config


def _generator_size(config, num_classes: int) -> int:
  """The generator's parameter count (the EMA copy's, as restored), from shapes alone."""
  config = registry.complete(config)
  objective = registry.build(config, num_classes)
  abstract = jax.eval_shape(functools.partial(state_lib.init_state, objective, config))
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state_lib.generator_params(abstract)))


@pytest.fixture(autouse=True)
def _release_compiled_programs():
  """Paper-size programs are large; a worker that runs many test files keeps none of them."""
  yield
  jax.clear_caches()


# One model of each family in every run; all six with JAXPR_GAN_PAPER_REFERENCE=1 (as the paper-size
# reference values), which keeps `make test` within its time on a 2-core machine.
EVERY_RUN = ('stargan', 'cyclegan', 'twocet')
_ALL = os.environ.get('JAXPR_GAN_PAPER_REFERENCE') == '1'


@pytest.mark.parametrize(
  'model',
  [
    m if m in EVERY_RUN else pytest.param(m, marks=pytest.mark.skipif(not _ALL, reason='opt-in'))
    for m in CASES
  ],
)
def test_paper_size_export_equals_the_framework_on_an_unseen_batch_size(model, tmp_path):
  size, classes, num_params = CASES[model]
  paper = _paper_config(model, tmp_path)
  # The image size does not change the generator: the paper config's count, from shapes alone.
  assert _generator_size(paper, len(classes)) == num_params
  config = paper.copy_and_resolve_references()
  config.data.image_size = size
  config_validation.validate(config, 1, classes)
  workdir, path = str(tmp_path / model), str(tmp_path / f'{model}.jaxgen')
  restore.write_run(config, classes, workdir)
  meta = export.export_run(workdir, path)
  assert meta['platforms'] == ['cpu', 'cuda', 'tpu']  # no fallback to the CPU alone
  assert meta['image_size'] == size and meta['class_names'] == classes
  _, _, weights = export._read(path)  # pylint: disable=protected-access
  assert len(weights) == meta['num_params'] and sum(w.size for w in weights) == num_params

  exported, framework = export.load(path), inference.from_run(workdir)
  rng = np.random.default_rng(0)
  faces, reference = rng.integers(0, 256, (2, BATCH, size, size, 3), dtype=np.uint8)
  target = 0 if exported.family == 'two_domain' else 1  # CycleGAN: B -> A; else class 1
  args = (
    images.to_float(faces),
    np.full((BATCH,), target, np.int32),
    np.full((BATCH,), 0.7, np.float32),  # MMA-GAN's intensity, 2CET-GAN's code scale
    images.to_float(reference),
  )
  image, mask = map(np.asarray, exported.translate(*args))
  truth, truth_mask = map(np.asarray, framework.translate(*args))
  assert image.shape == (BATCH, size, size, 3) and mask.shape == (BATCH, size, size)
  tol = RTOL_WINOGRAD.get(model, RTOL) * max(1.0, float(np.abs(truth).max()))
  print(f'{model}: max |diff| {np.abs(image - truth).max():.2e}, mask', end=' ')
  print(f'{np.abs(mask - truth_mask).max():.2e}, tolerance {tol:.1e}')
  np.testing.assert_allclose(image, truth, rtol=0, atol=tol)
  np.testing.assert_allclose(mask, truth_mask, rtol=0, atol=tol)
  assert np.abs(image - args[0]).max() > 0.01  # not the input passed through
  # The attention masks: SARGAN's SARB, MMA-GAN's spatial attention, DCAM-GAN's mask network.
  assert (mask.std() > 0) == meta['has_mask'] == (model in ('sargan', 'mmagan', 'dcam'))
  # What `edit` runs: uint8 in and out, one target for the batch; float rounding moves a level.
  out, _ = exported(faces, target, 0.7, reference)
  assert np.abs(out.astype(int) - images.to_uint8(truth)).max() <= 1
