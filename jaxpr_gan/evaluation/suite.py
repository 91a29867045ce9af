"""Distribution metrics (FID, KID, IS), the expression judge and LPIPS, for every model family.

What is generated, and against which real images (the data's `config.eval.fid_reference_split`):
  conditional  every test face translated to every other class  vs  that split's faces
  two_domain   test A -> B  vs  the split's B faces, and test B -> A  vs  its A faces
  reference    every neutral test face given the expression of emotional test faces (cycled)
               vs  the split's emotional faces
Images are compared as uint8, as they would be saved. Features come from the FID Inception
(`jaxpr_gan.evaluation.metrics.inception`) whose weights file the user gives; without it these
metrics are skipped with one line saying where to put the path. The real images' features are
computed once and cached under a key of everything that changes them.
"""

import dataclasses
import hashlib
import json
import os
import warnings

from absl import logging
import jax
import ml_collections
import numpy as np

from input_pipeline import groups
from input_pipeline import pipeline
from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan import images
from jaxpr_gan import inference
from jaxpr_gan.evaluation import judge as judge_lib
from jaxpr_gan.evaluation.arrays import decode
from jaxpr_gan.evaluation.arrays import in_batches
from jaxpr_gan.evaluation.metrics import distribution
from jaxpr_gan.evaluation.metrics import inception
from jaxpr_gan.evaluation.metrics import lpips

MISSING_INCEPTION = (
  'FID, KID and IS skipped: no Inception weights. Set --config.eval.inception_weights to '
  "pytorch-fid's pt_inception-2015-12-05-6726825d.pth (nothing is downloaded)."
)
MISSING_JUDGE = (
  'judge accuracy skipped: no expression judge. Train one with python -m jaxpr_gan.tools.judge '
  '--config <this config> --workdir <dir>, then set --config.eval.judge_dir=<dir>.'
)
MISSING_LPIPS = (
  "LPIPS skipped: set --config.eval.lpips_backbone to torchvision's vgg16 .pth and "
  "--config.eval.lpips_linear to the lpips package's weights/v0.1/vgg.pth."
)
PREPROCESSING = 'pytorch-fid: uint8 RGB / 255, bilinear 299x299 (align_corners=False), 2x-1'


@dataclasses.dataclass
class GeneratedSet:
  """Generated uint8 images; the classes requested (None for two domains); the group of the
  real images to compare with (None: a labelled source, else 0 or 1 of a two-group source);
  the inputs they were generated from."""

  name: str
  images: np.ndarray
  targets: np.ndarray | None
  real_group: int | None
  inputs: np.ndarray


def generated_sets(
  config: ml_collections.ConfigDict, objective, g_params, class_names
) -> list[GeneratedSet]:
  """The generated images of the family (see the module docstring)."""
  translate = jax.jit(
    lambda x, t, rho, ref: inference.translate_fn(objective)(g_params, x, t, rho, ref)[0]
  )
  size, bs, limit = config.data.image_size, config.eval.batch_size, config.eval.fid_max_images

  def run(x, targets, references=None):
    references = x if references is None else references
    f = lambda inp, t, ref: images.to_uint8(
      translate(images.to_float(inp), t, np.ones(len(t), np.float32), images.to_float(ref))
    )
    return in_batches(f, [x, targets.astype(np.int32), references], bs)[0]

  test = pipeline.make_source(config.data, 'test')
  if objective.family == 'two_domain':
    sets = []
    for name, src, dst, target in (('a2b', 0, 1, 1), ('b2a', 1, 0, 0)):
      x, _ = decode(test.groups[src], limit, size)
      sets.append(GeneratedSet(name, run(x, np.full(len(x), target)), None, dst, x))
    return sets
  if objective.family == 'reference':
    neutral, _ = decode(test.groups[0], limit, size)
    emotional, labels = decode(test.groups[1], limit, size)
    per_target = max(1, min(len(emotional), limit // len(neutral)))
    idx = np.array(
      [(i + j) % len(emotional) for i in range(len(neutral)) for j in range(per_target)]
    )
    x = np.repeat(neutral, per_target, axis=0)
    return [GeneratedSet('transfer', run(x, labels[idx], emotional[idx]), labels[idx], 1, x)]
  num_classes = len(class_names)
  x, labels = decode(test, max(1, limit // max(num_classes - 1, 1)), size)
  src = np.repeat(np.arange(len(x)), num_classes)
  tgt = np.tile(np.arange(num_classes), len(x))
  keep = tgt != labels[src]
  inputs = x[src[keep]]
  return [GeneratedSet('translation', run(inputs, tgt[keep]), tgt[keep], None, inputs)]


class FeatureCache:
  """Inception features of real images, stored as .npz under a key of what determines them."""

  def __init__(self, cache_dir: str):
    self.dir = cache_dir or os.path.join(
      os.path.expanduser('~'), '.cache', 'jaxpr_gan', 'fid_features'
    )

  def key(self, description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:24]

  def get(self, description: dict, compute):
    path = os.path.join(self.dir, self.key(description) + '.npz')
    if os.path.exists(path):
      with np.load(path) as f:
        logging.info('Reference features from the cache %s.', path)
        return f['pool'], f['logits']
    pool, logits = compute()
    os.makedirs(self.dir, exist_ok=True)
    with files.atomic_write(path, 'wb') as f:  # whole files only, even if interrupted
      np.savez(f, pool=pool, logits=logits)
    files.write_json(path[:-4] + '.json', description, sort_keys=True)
    return pool, logits


def _real_description(config, split: str, group, weights_sha: str) -> dict:
  data = {k: v for k, v in config.data.to_dict().items() if k not in ('num_workers', 'random_flip')}
  return {
    'data': data,
    'split': split,
    'group': group,
    'max_images': config.eval.fid_max_images,
    'preprocessing': PREPROCESSING,
    'inception_sha256': weights_sha,
  }


def _real_images(config, split: str, group):
  source = pipeline.make_source(config.data, split)
  if isinstance(source, groups.TwoGroupSource):
    source = source.groups[group]
  return decode(source, config.eval.fid_max_images, config.data.image_size)[0]


def distribution_metrics(config: ml_collections.ConfigDict, sets) -> dict:
  """FID, KID and IS of each generated set; a skip note when there are no weights."""
  weights = config.eval.inception_weights
  if not weights:
    logging.warning(MISSING_INCEPTION)
    return {'skipped': MISSING_INCEPTION}
  if not os.path.isfile(weights):
    note = f'FID, KID and IS skipped: config.eval.inception_weights {weights!r} does not exist.'
    logging.warning(note)
    return {'skipped': note}
  params = inception.load_weights(weights)
  sha = files.sha256(weights)
  features = inception.features_fn()
  extract = lambda images: in_batches(
    lambda b: features(params, b), [images], config.eval.batch_size
  )
  cache = FeatureCache(config.eval.stats_cache_dir)
  split = config.eval.fid_reference_split
  report = {
    'inception_weights': os.path.abspath(weights),
    'inception_sha256': sha,
    'reference_split': split,
    'preprocessing': PREPROCESSING,
  }
  for gen in sets:
    group = gen.real_group
    real_pool, _ = cache.get(
      _real_description(config, split, group, sha),
      lambda g=group: extract(_real_images(config, split, g)),
    )
    pool, logits = extract(gen.images)
    entry = {'num_generated': len(gen.images), 'num_real': len(real_pool)}
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always')
      try:
        entry['fid'] = distribution.frechet_distance_from_features(pool, real_pool)
      except distribution.FrechetDistanceError as e:
        entry['fid'], entry['fid_error'] = None, str(e)
    if caught:
      entry['warnings'] = sorted({str(w.message) for w in caught})
    entry['kid'], entry['kid_std'] = distribution.kernel_inception_distance(
      pool, real_pool, config.eval.kid_subsets, config.eval.kid_subset_size
    )
    splits = min(10, len(logits))
    entry['is'], entry['is_std'] = distribution.inception_score(logits, splits)
    report[gen.name] = entry
  return report


def judge_metrics(config: ml_collections.ConfigDict, sets, class_names) -> dict:
  """Share of generated images the judge classifies as the requested class (the StarGAN
  paper's protocol), and the judge's accuracy on the real test images for reference."""
  judge_dir = config.eval.judge_dir
  if not judge_dir:
    logging.warning(MISSING_JUDGE)
    return {'skipped': MISSING_JUDGE}
  judge = judge_lib.load(judge_dir)
  if list(judge.class_names) != list(class_names):
    raise errors.BadInput(
      f'the judge in {judge_dir} knows classes {judge.class_names} but this run '
      f"has {list(class_names)}; train a judge on this run's data."
    )
  if judge.meta['image_size'] != config.data.image_size:
    raise errors.BadInput(
      f'the judge in {judge_dir} was trained on {judge.meta["image_size"]} px '
      f'images, this run has {config.data.image_size} px; train a judge on this '
      "run's data."
    )
  report = {
    'judge_dir': os.path.abspath(judge_dir),
    'judge_test_accuracy': judge.meta['test_accuracy'],
  }
  for gen in sets:
    if gen.targets is None:
      continue
    predicted = judge.predict(gen.images, config.eval.batch_size)
    targets = gen.targets
    report[gen.name] = {
      'target_accuracy': float(np.mean(predicted == targets)),
      'per_target': {
        class_names[c]: float(np.mean(predicted[targets == c] == c)) for c in np.unique(targets)
      },
    }
  return report


def lpips_metrics(config: ml_collections.ConfigDict, sets) -> dict:
  """Mean LPIPS between each generated image and its input: how far the edit moves it."""
  paths = (config.eval.lpips_backbone, config.eval.lpips_linear)
  if not all(paths):
    logging.warning(MISSING_LPIPS)
    return {'skipped': MISSING_LPIPS}
  missing = [f for f in paths if not os.path.isfile(f)]
  if missing:
    note = f'LPIPS skipped: {missing[0]!r} does not exist.'
    logging.warning(note)
    return {'skipped': note}
  params = lpips.load(*paths)
  fn = lambda a, b: lpips.distance_jit(params, images.to_float(a), images.to_float(b))
  report = {'lpips_backbone': os.path.abspath(paths[0]), 'lpips_linear': os.path.abspath(paths[1])}
  for gen in sets:
    values = in_batches(fn, [gen.inputs, gen.images], config.eval.batch_size)[0]
    report[gen.name] = {'lpips_to_input': float(np.mean(values))}
  return report


def evaluate(config: ml_collections.ConfigDict, objective, g_params, class_names) -> dict:
  """{'distribution': FID/KID/IS per generated set, 'judge': target accuracy}, each a skip note
  when its file is not configured; the images are generated once for both."""
  sets = []
  e = config.eval
  if e.inception_weights or e.judge_dir or (e.lpips_backbone and e.lpips_linear):
    sets = generated_sets(config, objective, g_params, class_names)
  return {
    'distribution': distribution_metrics(config, sets),
    'judge': judge_metrics(config, sets, class_names),
    'lpips': lpips_metrics(config, sets),
  }
