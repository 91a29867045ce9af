"""How a generator's output follows a continuous input: MMA-GAN's intensity, 2CET-GAN's code
scale. On the synthetic faces each output is matched against the truth rendered at every
intensity of a grid."""

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import stats

from input_pipeline import synthetic
from jaxpr_gan import images
from jaxpr_gan.evaluation import two_group
from jaxpr_gan.images import to_float


def evaluate_intensity(
  config: ml_collections.ConfigDict,
  translate,
  class_names,
  out_dir: str,
  rhos=None,
  source_classes=None,
  file_name: str = 'intensity.png',
) -> dict:
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
  ids = two_group.test_identities(config)
  # Every intensity of 'neutral' renders the same face, so it has no intensity to follow.
  targets = [t for t in range(num_classes) if class_names[t] != 'neutral']
  pairs = [(i, s, t) for i in ids for s in sources for t in targets if s != t]
  faces = {(i, c): render(int(i), c) for i in ids for c in range(num_classes)}
  ladders = {
    (i, t): np.stack([render(int(i), t, intensity=float(g)) for g in grid])
    for i in ids
    for t in targets
  }
  est, l1 = _estimates(translate, faces, ladders, pairs, rhos, grid, config.eval.batch_size)
  rho_all = np.repeat(rhos, len(pairs))
  if np.ptp(est) == 0:  # a constant output intensity has no rank correlation
    spearman = None
  else:
    spearman = float(stats.spearmanr(rho_all, est.reshape(-1)).statistic)
  _write_intensity_grid(
    os.path.join(out_dir, file_name),
    translate,
    faces,
    ladders,
    pairs,
    rhos,
    grid,
    config.eval.num_grid_faces,
  )
  return {
    'rho': rhos.tolist(),
    'mean_estimated_intensity': est.mean(axis=1).tolist(),
    'paired_l1_at_rho': l1.mean(axis=1).tolist(),
    'mean_abs_intensity_error': float(np.mean(np.abs(est - rhos[:, None]))),
    'spearman': spearman,
    'num_pairs': len(pairs),
    'candidates': len(grid),
  }


def _estimates(translate, faces, ladders, pairs, rhos, grid, bs: int):
  """-> (estimated intensity, L1 to the truth at rho), each (len(rhos), len(pairs))."""
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
      dist, jnp.argmin(jnp.abs(grid_j[None] - rho[:, None]), axis=1)[:, None], axis=1
    )[:, 0]
    return nearest, at_rho

  est, l1 = np.zeros((len(rhos), len(pairs))), np.zeros((len(rhos), len(pairs)))
  for r, rho in enumerate(rhos):
    for start in range(0, len(pairs), bs):
      chunk = pairs[start : start + bs]
      chunk_p = chunk + [chunk[-1]] * (bs - len(chunk))
      e, d = jax.device_get(
        estimate(
          np.stack([faces[(i, s)] for i, s, _ in chunk_p]),
          np.array([t for _, _, t in chunk_p], np.int32),
          np.full(bs, rho, np.float32),
          np.stack([ladders[(i, t)] for i, _, t in chunk_p]),
        )
      )
      est[r, start : start + len(chunk)] = e[: len(chunk)]
      l1[r, start : start + len(chunk)] = d[: len(chunk)]
  return est, l1


def _write_intensity_grid(path, translate, faces, ladders, pairs, rhos, grid, count):
  """Per face two rows: the input and its outputs at each rho, then a blank and the truths."""
  step = max(len(pairs) // max(count, 1), 1)
  chosen = pairs[::step][:count]
  inputs = np.stack([faces[(i, s)] for i, s, _ in chosen])
  x = jnp.repeat(to_float(jnp.asarray(inputs)), len(rhos), axis=0)
  targets = jnp.repeat(jnp.array([t for _, _, t in chosen], jnp.int32), len(rhos))
  rho = jnp.tile(jnp.asarray(rhos), len(chosen))
  out = images.to_uint8(translate(x, targets, rho))
  out = out.reshape(len(chosen), len(rhos), *inputs.shape[1:])
  blank = np.full_like(inputs[0], 255)
  on_ladder = [int(np.argmin(np.abs(grid - r))) for r in rhos]
  rows = []
  for k, (i, _, t) in enumerate(chosen):
    rows.append([inputs[k]] + list(out[k]))
    rows.append([blank] + [ladders[(i, t)][g] for g in on_ladder])
  images.save_png(path, images.image_grid(np.array(rows)), min_size=512)
