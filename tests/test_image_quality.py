"""Paired metrics on cases solvable by hand."""
import jax.numpy as jnp
import numpy as np

from jaxpr_gan.metrics import image_quality


def test_psnr_known_mse():
  x = jnp.full((2, 16, 16, 3), 0.5)
  y = x + jnp.array([0.1, 0.01]).reshape(2, 1, 1, 1)
  np.testing.assert_allclose(image_quality.psnr(x, y), [20.0, 40.0], rtol=1e-4)


def test_ssim_identical_and_constant_images():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(size=(2, 24, 24, 3)), jnp.float32)
  np.testing.assert_allclose(image_quality.ssim(x, x), 1.0, rtol=1e-5)
  # Constant images a, b: variances vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1).
  a, b, c1 = 0.2, 0.6, 0.01 ** 2
  s = image_quality.ssim(jnp.full((1, 16, 16, 3), a), jnp.full((1, 16, 16, 3), b))
  np.testing.assert_allclose(s, (2 * a * b + c1) / (a * a + b * b + c1), rtol=1e-4)


def test_l1():
  x = jnp.zeros((1, 4, 4, 3))
  assert float(image_quality.l1(x, x + 0.25)[0]) == 0.25
