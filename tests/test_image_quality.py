"""Paired metrics on cases solvable by hand."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxpr_gan.evaluation.metrics import image_quality


def test_psnr_known_mse():
  x = jnp.full((2, 16, 16, 3), 0.5)
  y = x + jnp.array([0.1, 0.01]).reshape(2, 1, 1, 1)
  np.testing.assert_allclose(image_quality.psnr(x, y), [20.0, 40.0], rtol=1e-4)


def test_ssim_identical_and_constant_images():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(size=(2, 24, 24, 3)), jnp.float32)
  np.testing.assert_allclose(image_quality.ssim(x, x), 1.0, rtol=1e-5)
  # Constant images a, b: variances vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1).
  a, b, c1 = 0.2, 0.6, 0.01**2
  s = image_quality.ssim(jnp.full((1, 16, 16, 3), a), jnp.full((1, 16, 16, 3), b))
  np.testing.assert_allclose(s, (2 * a * b + c1) / (a * a + b * b + c1), rtol=1e-4)


def test_l1():
  x = jnp.zeros((1, 4, 4, 3))
  assert float(image_quality.l1(x, x + 0.25)[0]) == 0.25


def test_psnr_and_ssim_equal_scikit_image():
  from skimage import metrics  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  x = rng.uniform(size=(3, 32, 32, 3)).astype(np.float32)
  y = np.clip(x + rng.normal(scale=0.1, size=x.shape), 0, 1).astype(np.float32)
  ssim = np.asarray(image_quality.ssim(jnp.asarray(x), jnp.asarray(y)))
  psnr = np.asarray(image_quality.psnr(jnp.asarray(x), jnp.asarray(y)))
  for i in range(3):  # Wang et al.'s settings: Gaussian window sigma 1.5, population statistics
    want = metrics.structural_similarity(
      x[i],
      y[i],
      gaussian_weights=True,
      sigma=1.5,
      use_sample_covariance=False,
      data_range=1.0,
      channel_axis=-1,
    )
    np.testing.assert_allclose(ssim[i], want, atol=1e-4)
    np.testing.assert_allclose(
      psnr[i], metrics.peak_signal_noise_ratio(x[i], y[i], data_range=1.0), atol=1e-4
    )


def test_lpips_equals_the_lpips_computation_on_the_same_weights(tmp_path):
  torch = pytest.importorskip('torch')
  from jaxpr_gan.evaluation.metrics import lpips  # pylint: disable=g-import-not-at-top
  from tests import torch_official  # pylint: disable=g-import-not-at-top
  from tests import torch_official_features  # pylint: disable=g-import-not-at-top

  net = torch_official.randomize(torch_official_features.LPIPS(), 0).eval()
  with torch.no_grad():  # lin weights are non-negative in the released file
    for k in range(5):
      w = getattr(net, f'lin{k}').model[1].weight
      w.copy_(w.abs())
  backbone, linear = str(tmp_path / 'vgg16.pth'), str(tmp_path / 'lpips_vgg.pth')
  torch.save(net.net.state_dict(), backbone)
  torch.save({k: v for k, v in net.state_dict().items() if k.startswith('lin')}, linear)
  params = lpips.load(backbone, linear)
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
  y = np.clip(x + rng.normal(scale=0.3, size=x.shape), -1, 1).astype(np.float32)
  got = np.asarray(lpips.distance_jit(params, jnp.asarray(x), jnp.asarray(y)))
  with torch.no_grad():
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
    want = net(to_t(x), to_t(y)).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-4)
  assert (got > 0).all()
  np.testing.assert_allclose(
    np.asarray(lpips.distance_jit(params, jnp.asarray(x), jnp.asarray(x))), 0.0, atol=1e-7
  )
  with pytest.raises(lpips.LPIPSWeightsError, match='lin0'):
    lpips.load(backbone, backbone)
