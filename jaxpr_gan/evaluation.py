"""Evaluation of a checkpoint: every test face translated to every class, scored against truth.

On the synthetic faces the true answer of any translation can be rendered, so outputs are scored
pixel-wise (L1, PSNR, SSIM) and by `improvement_rate`: over pairs whose source and target classes
differ, the share whose output is closer (L1) to the truth than the unchanged input is.
"""
import functools
import json
import os

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import stats

from input_pipeline import pipeline
from input_pipeline import synthetic
from jaxpr_gan import checkpointing
from jaxpr_gan import evaluation_groups
from jaxpr_gan import evaluation_suite
from jaxpr_gan import html_report
from jaxpr_gan import inference
from jaxpr_gan import objectives
from jaxpr_gan import training
from jaxpr_gan import visualization
from jaxpr_gan.metrics import paired
from jaxpr_gan.objectives import intensity
from jaxpr_gan.objectives.base import to_float


def restore_generator(config: ml_collections.ConfigDict, workdir: str, step: int | None = None):
  """-> (objective, generator params, class names, step) from a run directory."""
  ckpt = checkpointing.Checkpointer(workdir, max_to_keep=None, async_save=False)
  steps = ckpt.all_steps()
  if not steps:
    raise FileNotFoundError(f'no checkpoint in {os.path.join(workdir, "checkpoints")}: train first '
                            f'with python train.py --config ... --workdir {workdir}')
  step = max(steps) if step is None else step
  if step not in steps:
    raise ValueError(f'no checkpoint for step {step} in {workdir}; saved steps: {sorted(steps)}')
  class_names = ckpt.meta(step)['class_names']
  objective = objectives.build(config, len(class_names))
  abstract = jax.eval_shape(functools.partial(training.init_state, objective, config))
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  template = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device),
                          abstract)
  state, _ = ckpt.restore(step, template, with_data_iter=False)
  ckpt.close()
  return objective, training.generator_params(state), class_names, step


def evaluate(config: ml_collections.ConfigDict, workdir: str, step: int | None = None) -> dict:
  """Writes <workdir>/eval/metrics.json and grid.png; returns the metrics."""
  objective, g_params, class_names, step = restore_generator(config, workdir, step)
  out_dir = os.path.join(workdir, 'eval')
  os.makedirs(out_dir, exist_ok=True)
  if config.data.source != 'synthetic':
    source = pipeline.make_source(config.data, 'test')
    faces = training.sample_inputs(config, source, config.eval.num_grid_faces,
                                   objective.batch_keys)
    grid = training.sample_grid(jax.jit(objective.sample_cells), g_params, faces)
    visualization.save_png(os.path.join(out_dir, 'grid.png'), grid)
    report = {'step': step, 'note': 'no ground truth for a folder source: grid only'}
  elif objective.family == 'two_domain':
    report = dict(evaluation_groups.evaluate_domains(config, objective, g_params, out_dir),
                  step=step)
  elif objective.family == 'reference':
    report, translate = evaluation_groups.evaluate_reference(config, objective, g_params,
                                                             class_names, out_dir)
    # The code scale plays the intensity: each class's mean code times rho, on neutral faces.
    report['code_scale'] = evaluate_intensity(config, translate, class_names, out_dir,
                                              rhos=config.eval.code_scales, source_classes=[0],
                                              file_name='code_scale.png')
    report['step'] = step
  else:
    translate = jax.jit(functools.partial(objective.translate, g_params))
    report = evaluate_synthetic(config, translate, class_names, out_dir)
    if isinstance(objective, intensity.IntensityGAN):
      report['intensity'] = evaluate_intensity(config, translate, class_names, out_dir)
    report['step'] = step
  report.update(evaluation_suite.evaluate(config, objective, g_params, class_names))
  if _write_masks(config, objective, g_params, class_names, out_dir):
    report['masks'] = 'masks.png'
  with open(os.path.join(out_dir, 'metrics.json'), 'w') as f:
    json.dump(report, f, indent=1)
  html_report.write(os.path.join(out_dir, 'report.html'), config, workdir, report)
  logging.info('Evaluation of step %d: %s', step, json.dumps(report))
  return report


def _write_masks(config, objective, g_params, class_names, out_dir) -> bool:
  """For generators with attention masks: per test face, the face and its mask for every
  target class (white: changed). -> whether the picture was written."""
  if not inference.describe(objective, g_params, config)['has_mask']:
    return False
  source = pipeline.make_source(config.data, 'test')
  faces = training.sample_inputs(config, source, config.eval.num_grid_faces, ('image',))['image']
  n, num_classes = len(faces), len(class_names)
  x = jnp.repeat(to_float(jnp.asarray(faces)), num_classes, axis=0)
  targets = jnp.tile(jnp.arange(num_classes), n)
  out, mask = jax.jit(functools.partial(inference.translate_fn(objective), g_params))(
      x, targets, jnp.ones(len(targets)), x)
  out = visualization.to_uint8(out).reshape(n, num_classes, *faces.shape[1:])
  mask = np.asarray(np.clip(mask, 0, 1) * 255, np.uint8).reshape(n, num_classes,
                                                                  *faces.shape[1:3])
  rows = []
  for k in range(n):
    rows.append([faces[k]] + list(out[k]))
    rows.append([np.full_like(faces[k], 255)] + [np.repeat(m[..., None], 3, -1)
                                                 for m in mask[k]])
  visualization.save_png(os.path.join(out_dir, 'masks.png'),
                         visualization.image_grid(np.array(rows)), min_size=512)
  return True


def evaluate_synthetic(config: ml_collections.ConfigDict, translate, class_names,
                       out_dir: str) -> dict:
  """Scores `translate(x in [-1, 1], target classes) -> images` on every test pair."""
  data = config.data
  num_classes = len(class_names)
  render = functools.partial(synthetic.render_face, intensity=1.0, style=data.style,
                             size=data.image_size)
  ids = evaluation_groups.test_identities(config)
  # Every test face (identity, source class) paired with every target class.
  pairs = [(i, s, t) for i in ids for s in range(num_classes) for t in range(num_classes)]
  faces = {(i, c): render(int(i), c) for i in ids for c in range(num_classes)}

  @jax.jit
  def score(inp, truth, target):
    x, y = to_float(inp), to_float(truth)
    return paired.pair_metrics(translate(x, target), y, x)

  per_pair = paired.in_batches(score, {
      'inp': np.stack([faces[(i, s)] for i, s, _ in pairs]),
      'truth': np.stack([faces[(i, t)] for i, _, t in pairs]),
      'target': np.array([t for _, _, t in pairs], np.int32)}, config.eval.batch_size)
  src = np.array([s for _, s, _ in pairs])
  tgt = np.array([t for _, _, t in pairs])
  changed = src != tgt
  report = dict(paired.summary(per_pair, changed), class_names=list(class_names))
  same = paired.summary(per_pair, ~changed)
  for k in ('improvement_rate', 'psnr_improvement_rate'):
    same.pop(k)  # the input is the truth there
  report['same_class'] = same
  report['per_target'] = {name: paired.summary(per_pair, changed & (tgt == c))['improvement_rate']
                          for c, name in enumerate(class_names)}
  _write_grid(out_dir, translate, faces, ids, num_classes, config.eval.num_grid_faces)
  return report


def _write_grid(out_dir, translate, faces, ids, num_classes, count):
  """Per face two rows: the input and its translations, then a blank and the rendered truths."""
  chosen = [(ids[k], k % num_classes) for k in range(min(count, len(ids)))]
  inputs = np.stack([faces[f] for f in chosen])
  x = jnp.repeat(to_float(jnp.asarray(inputs)), num_classes, axis=0)
  targets = jnp.tile(jnp.arange(num_classes), len(chosen))
  out = visualization.to_uint8(translate(x, targets))
  out = out.reshape(len(chosen), num_classes, *inputs.shape[1:])
  blank = np.full_like(inputs[0], 255)
  rows = []
  for k, (i, _) in enumerate(chosen):
    rows.append([inputs[k]] + list(out[k]))
    rows.append([blank] + [faces[(i, t)] for t in range(num_classes)])
  grid = visualization.image_grid(np.array(rows))
  visualization.save_png(os.path.join(out_dir, 'grid.png'), grid, min_size=512)


def evaluate_intensity(config: ml_collections.ConfigDict, translate, class_names,
                       out_dir: str, rhos=None, source_classes=None,
                       file_name: str = 'intensity.png') -> dict:
  """How the output follows the intensity: `translate(x, targets, rho)` on the test faces.

  For every test face (of `source_classes`, default all), every other non-neutral target class
  and every rho of `rhos` (default `config.eval.intensities`), the estimated intensity is the
  one (of `config.eval.intensity_grid`
  evenly spaced in [0, 1]) whose rendered truth is nearest (L1) to the output (the mean of the
  nearest when several tie). Reports the mean
  estimate and the L1 to the truth at each rho, and the Spearman rank correlation of rho with
  the estimate over all outputs. A rho above 1 is compared with the truth at 1.
  """
  data = config.data
  num_classes = len(class_names)
  rhos = np.asarray(config.eval.intensities if rhos is None else rhos, np.float32)
  sources = range(num_classes) if source_classes is None else source_classes
  grid = np.linspace(0.0, 1.0, config.eval.intensity_grid).astype(np.float32)
  render = functools.partial(synthetic.render_face, style=data.style, size=data.image_size)
  ids = evaluation_groups.test_identities(config)
  # Every intensity of 'neutral' renders the same face, so it has no intensity to follow.
  targets = [t for t in range(num_classes) if class_names[t] != 'neutral']
  pairs = [(i, s, t) for i in ids for s in sources for t in targets if s != t]
  faces = {(i, c): render(int(i), c) for i in ids for c in range(num_classes)}
  ladders = {(i, t): np.stack([render(int(i), t, intensity=float(g)) for g in grid])
             for i in ids for t in targets}
  grid_j = jnp.asarray(grid)

  @jax.jit
  def estimate(inp, target, rho, ladder):
    """-> (estimated intensity, L1 to the truth at rho) per output; ladder (B, G, H, W, 3)."""
    out = (jnp.clip(translate(to_float(inp), target, rho), -1, 1) + 1) / 2
    truths = ladder.astype(jnp.float32) / 255.0
    dist = jnp.mean(jnp.abs(out[:, None] - truths), axis=(2, 3, 4))  # (B, G)
    # Small renders can tie (adjacent intensities drawn alike): the estimate is their mean.
    tied = dist <= jnp.min(dist, axis=1, keepdims=True)
    nearest = jnp.sum(tied * grid_j, axis=1) / jnp.sum(tied, axis=1)
    # L1 to the truth at rho itself (rho lies on the ladder: the intensities are multiples of it).
    at_rho = jnp.take_along_axis(
        dist, jnp.argmin(jnp.abs(grid_j[None] - rho[:, None]), axis=1)[:, None], axis=1)[:, 0]
    return nearest, at_rho

  bs = config.eval.batch_size
  est, l1 = np.zeros((len(rhos), len(pairs))), np.zeros((len(rhos), len(pairs)))
  for r, rho in enumerate(rhos):
    for start in range(0, len(pairs), bs):
      chunk = pairs[start:start + bs]
      chunk_p = chunk + [chunk[-1]] * (bs - len(chunk))
      e, d = jax.device_get(estimate(
          np.stack([faces[(i, s)] for i, s, _ in chunk_p]),
          np.array([t for _, _, t in chunk_p], np.int32), np.full(bs, rho, np.float32),
          np.stack([ladders[(i, t)] for i, _, t in chunk_p])))
      est[r, start:start + len(chunk)] = e[:len(chunk)]
      l1[r, start:start + len(chunk)] = d[:len(chunk)]
  rho_all = np.repeat(rhos, len(pairs))
  if np.ptp(est) == 0:  # a constant output intensity has no rank correlation
    spearman = None
  else:
    spearman = float(stats.spearmanr(rho_all, est.reshape(-1)).statistic)
  _write_intensity_grid(os.path.join(out_dir, file_name), translate, faces, ladders, pairs, rhos,
                        grid, config.eval.num_grid_faces)
  return {'rho': rhos.tolist(), 'mean_estimated_intensity': est.mean(axis=1).tolist(),
          'paired_l1_at_rho': l1.mean(axis=1).tolist(),
          'mean_abs_intensity_error': float(np.mean(np.abs(est - rhos[:, None]))),
          'spearman': spearman, 'num_pairs': len(pairs), 'candidates': len(grid)}


def _write_intensity_grid(path, translate, faces, ladders, pairs, rhos, grid, count):
  """Per face two rows: the input and its outputs at each rho, then a blank and the truths."""
  step = max(len(pairs) // max(count, 1), 1)
  chosen = pairs[::step][:count]
  inputs = np.stack([faces[(i, s)] for i, s, _ in chosen])
  x = jnp.repeat(to_float(jnp.asarray(inputs)), len(rhos), axis=0)
  targets = jnp.repeat(jnp.array([t for _, _, t in chosen], jnp.int32), len(rhos))
  rho = jnp.tile(jnp.asarray(rhos), len(chosen))
  out = visualization.to_uint8(translate(x, targets, rho))
  out = out.reshape(len(chosen), len(rhos), *inputs.shape[1:])
  blank = np.full_like(inputs[0], 255)
  on_ladder = [int(np.argmin(np.abs(grid - r))) for r in rhos]
  rows = []
  for k, (i, _, t) in enumerate(chosen):
    rows.append([inputs[k]] + list(out[k]))
    rows.append([blank] + [ladders[(i, t)][g] for g in on_ladder])
  visualization.save_png(path, visualization.image_grid(np.array(rows)), min_size=512)
