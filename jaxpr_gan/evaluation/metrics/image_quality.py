"""Paired image metrics on float images in [0, 1], NHWC, one value per image."""

import jax
import jax.numpy as jnp
import numpy as np


def l1(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
  return jnp.mean(jnp.abs(x - y), axis=(1, 2, 3))


def psnr(x: jnp.ndarray, y: jnp.ndarray, max_value: float = 1.0) -> jnp.ndarray:
  """Peak signal-to-noise ratio in dB; identical images give +inf."""
  mse = jnp.mean(jnp.square(x - y), axis=(1, 2, 3))
  return 10.0 * jnp.log10(max_value**2 / mse)


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
  g = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2) / sigma) ** 2)
  g /= g.sum()
  return np.outer(g, g).astype(np.float32)


def ssim(
  x: jnp.ndarray,
  y: jnp.ndarray,
  max_value: float = 1.0,
  window: int = 11,
  sigma: float = 1.5,
  k1: float = 0.01,
  k2: float = 0.03,
) -> jnp.ndarray:
  """Structural similarity (Wang et al. 2004): 11x11 Gaussian window (sigma 1.5), valid region,
  computed per channel and averaged; the window shrinks to the image for images under 11 px."""
  window = min(window, x.shape[1], x.shape[2])
  channels = x.shape[-1]
  kernel = jnp.asarray(_gaussian_window(window, sigma))[:, :, None, None]
  kernel = jnp.tile(kernel, (1, 1, 1, channels))

  def blur(z):
    return jax.lax.conv_general_dilated(
      z,
      kernel,
      (1, 1),
      'VALID',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=channels,
    )

  c1, c2 = (k1 * max_value) ** 2, (k2 * max_value) ** 2
  mu_x, mu_y = blur(x), blur(y)
  var_x = blur(x * x) - mu_x**2
  var_y = blur(y * y) - mu_y**2
  cov = blur(x * y) - mu_x * mu_y
  s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
  return jnp.mean(s, axis=(1, 2, 3))
