"""Scoring outputs against rendered truths: per-pair metrics, their summary, batched scoring."""

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from jaxpr_gan.evaluation.metrics import image_quality


def pair_metrics(out: jnp.ndarray, truth: jnp.ndarray, inp: jnp.ndarray) -> dict:
  """Per-pair metrics of float [-1, 1] images, computed on [0, 1].

  Outputs are clipped to the image range first, as when they are saved (models with an image
  residual, such as SARGAN, are not bounded by their tanh). The input's scores against the
  truth are the baseline of "leave the image unchanged".
  """
  to_unit = lambda z: (jnp.clip(z, -1, 1) + 1) / 2  # same ops on all, so same rounding
  o, t, i = to_unit(out), to_unit(truth), to_unit(inp)
  return {
    'l1': image_quality.l1(o, t),
    'psnr': image_quality.psnr(o, t),
    'ssim': image_quality.ssim(o, t),
    'input_l1': image_quality.l1(i, t),
    'input_psnr': image_quality.psnr(i, t),
    'input_ssim': image_quality.ssim(i, t),
  }


def summary(per_pair: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict:
  """Means over the pairs in `mask` (all by default), and how often the output beats the input."""
  mask = np.ones(len(per_pair['l1']), bool) if mask is None else mask
  m = {k: v[mask] for k, v in per_pair.items()}
  finite_mean = lambda v: float(np.mean(np.minimum(v, 100.0)))  # identical pairs: PSNR capped
  return {
    'paired_l1': float(np.mean(m['l1'])),
    'psnr': finite_mean(m['psnr']),
    'ssim': float(np.mean(m['ssim'])),
    'improvement_rate': float(np.mean(m['l1'] < m['input_l1'])),
    # The same question asked with PSNR (squared error), which small errors spread over the
    # whole face weigh less than L1 does.
    'psnr_improvement_rate': float(np.mean(m['psnr'] > m['input_psnr'])),
    'input_as_output': {
      'paired_l1': float(np.mean(m['input_l1'])),
      'psnr': finite_mean(m['input_psnr']),
      'ssim': float(np.mean(m['input_ssim'])),
    },
    'num_pairs': int(mask.sum()),
  }


def in_batches(
  fn: Callable[..., dict], arrays: dict[str, np.ndarray], batch_size: int
) -> dict[str, np.ndarray]:
  """Applies a jitted `fn(**arrays) -> dict of per-item values` in fixed-size batches (the last
  one padded, so one compiled shape) and concatenates the results."""
  n = len(next(iter(arrays.values())))
  out = {}
  for start in range(0, n, batch_size):
    stop = min(start + batch_size, n)
    pad = batch_size - (stop - start)
    chunk = {
      k: np.concatenate([v[start:stop]] + [v[stop - 1 : stop]] * pad) if pad else v[start:stop]
      for k, v in arrays.items()
    }
    for k, v in fn(**chunk).items():
      out.setdefault(k, []).append(np.asarray(v)[: stop - start])
  return {k: np.concatenate(v) for k, v in out.items()}
