"""Evaluation of a checkpoint: every test face translated to every class, scored against truth.

On the synthetic faces the true answer of any translation can be rendered, so outputs are scored
pixel-wise (L1, PSNR, SSIM) and by `improvement_rate`: over pairs whose source and target classes
differ, the share whose output is closer (L1) to the truth than the unchanged input is.
"""

import functools
import math
import os

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from input_pipeline import pipeline
from input_pipeline import synthetic
from jaxpr_gan import events
from jaxpr_gan import files
from jaxpr_gan import images
from jaxpr_gan import inference
from jaxpr_gan import run_config
from jaxpr_gan import storage
from jaxpr_gan.evaluation import intensity
from jaxpr_gan.evaluation import report as report_lib
from jaxpr_gan.evaluation import restore as restore_lib
from jaxpr_gan.evaluation import suite
from jaxpr_gan.evaluation import two_group
from jaxpr_gan.evaluation.metrics import paired
from jaxpr_gan.images import to_float
from jaxpr_gan.nn import conv
from jaxpr_gan.objectives import intensity as intensity_objective
from jaxpr_gan.training import samples


def evaluate(
  workdir: str,
  step: int | None = None,
  config: ml_collections.ConfigDict | None = None,
  out_dir: str | None = None,
) -> dict:
  """Writes metrics.json, report.html and the pictures to `out_dir` (default <workdir>/eval) as
  one set; returns the metrics. The config is the checkpoint's own unless `config` is given
  (e.g. with evaluation settings).

  The set replaces the previous one whole (files.atomic_folder): a killed evaluation leaves the
  previous step's complete set. `out_dir` serves runs this user cannot write into; its folder is
  checked once the checkpoint is read, before any evaluation. The numeric metrics also go to
  TensorBoard (`write_scalars`) in the folder that holds `out_dir`: the workdir by default,
  beside the training curves."""
  out_dir = storage.join(workdir, 'eval') if out_dir is None else out_dir
  parent = storage.dirname(out_dir)
  own = parent.rstrip('/') == storage.absolute(workdir).rstrip('/')
  flag = '--out (the run is not writable)' if own else '--out'
  run = restore_lib.restore(workdir, step, config)
  files.make_writable_folder(parent, 'the folder of the evaluation', flag)
  with conv.implementation(run.config.conv_impl), files.atomic_folder(out_dir) as tmp:
    report = _evaluate(run, workdir, tmp)
  write_scalars(parent, run.step, report)
  return report


def write_scalars(logdir: str, step: int, report: dict) -> None:
  """The report's finite numbers as TensorBoard scalars at the checkpoint's `step`, named
  'eval/<dotted key>' (eval/improvement_rate, eval/same_class.psnr, ...); strings, lists and
  flags are left out. `logdir` is the folder holding the evaluation's (the workdir unless
  --out): each evaluated step adds its point to the run's curves. Process 0 writes."""
  if jax.process_index() != 0:
    return
  numbers = {k: v for k, v in report.items() if k not in ('step', 'config', 'config_hash')}
  scalars = {
    f'eval/{k}': v
    for k, v in run_config.flatten(numbers).items()
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
  }
  writer = events.create_writer(logdir, asynchronous=False)  # gs://, s3://: mirrored
  writer.write_scalars(step, scalars)
  writer.close()


def _family_report(run: restore_lib.Restored, out_dir: str) -> dict:
  """The scores against the synthetic truth of the run's family."""
  config, objective, g_params, class_names = (
    run.config,
    run.objective,
    run.g_params,
    run.class_names,
  )
  if config.data.source != 'synthetic':
    source = pipeline.make_source(config.data, 'test')
    faces = samples.sample_inputs(config, source, config.eval.num_grid_faces, objective.batch_keys)
    grid = samples.sample_grid(jax.jit(objective.sample_cells), g_params, faces)
    images.save_png(os.path.join(out_dir, 'grid.png'), grid)
    return {'note': 'no ground truth for a folder source: grid only'}
  if objective.family == 'two_domain':
    return two_group.evaluate_domains(config, objective, g_params, out_dir)
  if objective.family == 'reference':
    report, translate = two_group.evaluate_reference(
      config, objective, g_params, class_names, out_dir
    )
    # The code scale plays the intensity: each class's mean code times rho, on neutral faces.
    report['code_scale'] = intensity.evaluate_intensity(
      config,
      translate,
      class_names,
      out_dir,
      rhos=config.eval.code_scales,
      source_classes=[0],
      file_name='code_scale.png',
    )
    return report
  translate = jax.jit(functools.partial(objective.translate, g_params))
  report = evaluate_synthetic(config, translate, class_names, out_dir)
  if isinstance(objective, intensity_objective.IntensityGAN):
    report['intensity'] = intensity.evaluate_intensity(config, translate, class_names, out_dir)
  return report


def _evaluate(run: restore_lib.Restored, workdir: str, out_dir: str) -> dict:
  report = dict(_family_report(run, out_dir), step=run.step)
  report.update(suite.evaluate(run.config, run.objective, run.g_params, run.class_names))
  if _write_masks(run.config, run.objective, run.g_params, run.class_names, out_dir):
    report['masks'] = 'masks.png'
  # The config the scores belong to (the checkpoint's, or the one given), whole and as a hash.
  report.update(config_hash=run_config.config_hash(run.config), config=run.config.to_dict())
  files.write_json(os.path.join(out_dir, 'metrics.json'), report)
  report_lib.write(os.path.join(out_dir, 'report.html'), run.config, workdir, report)
  logged = {k: v for k, v in report.items() if k != 'config'}
  logging.info('Evaluation of step %d: %s', run.step, files.dumps_json(logged))
  return report


def _write_masks(config, objective, g_params, class_names, out_dir) -> bool:
  """For generators with attention masks: per test face, the face and its mask for every
  target class (white: changed). -> whether the picture was written."""
  if not inference.describe(objective, g_params, config)['has_mask']:
    return False
  source = pipeline.make_source(config.data, 'test')
  faces = samples.sample_inputs(config, source, config.eval.num_grid_faces, ('image',))['image']
  n, num_classes = len(faces), len(class_names)
  x = jnp.repeat(to_float(jnp.asarray(faces)), num_classes, axis=0)
  targets = jnp.tile(jnp.arange(num_classes), n)
  out, mask = jax.jit(functools.partial(inference.translate_fn(objective), g_params))(
    x, targets, jnp.ones(len(targets)), x
  )
  out = images.to_uint8(out).reshape(n, num_classes, *faces.shape[1:])
  mask = images.mask_to_uint8(mask).reshape(n, num_classes, *faces.shape[1:])
  rows = []
  for k in range(n):
    rows.append([faces[k]] + list(out[k]))
    rows.append([np.full_like(faces[k], 255)] + list(mask[k]))
  images.save_png(
    os.path.join(out_dir, 'masks.png'), images.image_grid(np.array(rows)), min_size=512
  )
  return True


def evaluate_synthetic(
  config: ml_collections.ConfigDict, translate, class_names, out_dir: str
) -> dict:
  """Scores `translate(x in [-1, 1], target classes) -> images` on every test pair."""
  data = config.data
  num_classes = len(class_names)
  render = functools.partial(
    synthetic.render_face, intensity=1.0, style=data.style, size=data.image_size
  )
  ids = two_group.test_identities(config)
  # Every test face (identity, source class) paired with every target class.
  pairs = [(i, s, t) for i in ids for s in range(num_classes) for t in range(num_classes)]
  faces = {(i, c): render(int(i), c) for i in ids for c in range(num_classes)}

  @jax.jit
  def score(inp, truth, target):
    x, y = to_float(inp), to_float(truth)
    return paired.pair_metrics(translate(x, target), y, x)

  per_pair = paired.in_batches(
    score,
    {
      'inp': np.stack([faces[(i, s)] for i, s, _ in pairs]),
      'truth': np.stack([faces[(i, t)] for i, _, t in pairs]),
      'target': np.array([t for _, _, t in pairs], np.int32),
    },
    config.eval.batch_size,
  )
  src = np.array([s for _, s, _ in pairs])
  tgt = np.array([t for _, _, t in pairs])
  changed = src != tgt
  report = dict(paired.summary(per_pair, changed), class_names=list(class_names))
  same = paired.summary(per_pair, ~changed)
  for k in ('improvement_rate', 'psnr_improvement_rate'):
    same.pop(k)  # the input is the truth there
  report['same_class'] = same
  report['per_target'] = {
    name: paired.summary(per_pair, changed & (tgt == c))['improvement_rate']
    for c, name in enumerate(class_names)
  }
  _write_grid(out_dir, translate, faces, ids, num_classes, config.eval.num_grid_faces)
  return report


def _write_grid(out_dir, translate, faces, ids, num_classes, count):
  """Per face two rows: the input and its translations, then a blank and the rendered truths."""
  chosen = [(ids[k], k % num_classes) for k in range(min(count, len(ids)))]
  inputs = np.stack([faces[f] for f in chosen])
  x = jnp.repeat(to_float(jnp.asarray(inputs)), num_classes, axis=0)
  targets = jnp.tile(jnp.arange(num_classes), len(chosen))
  out = images.to_uint8(translate(x, targets))
  out = out.reshape(len(chosen), num_classes, *inputs.shape[1:])
  blank = np.full_like(inputs[0], 255)
  rows = []
  for k, (i, _) in enumerate(chosen):
    rows.append([inputs[k]] + list(out[k]))
    rows.append([blank] + [faces[(i, t)] for t in range(num_classes)])
  grid = images.image_grid(np.array(rows))
  images.save_png(os.path.join(out_dir, 'grid.png'), grid, min_size=512)
