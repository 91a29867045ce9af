"""FID Inception against pytorch-fid's architecture; FID, KID and IS against independent sums
and against the reference libraries' functions (pytorch-fid, clean-fid)."""

import sys
import types
import warnings

import numpy as np
import pytest

from jaxpr_gan.evaluation.metrics import distribution
from jaxpr_gan.evaluation.metrics import inception


def _random_fid_inception(torch, seed=0):
  """pytorch-fid's network with random weights and batch-norm statistics of sane scale."""
  from tests import torch_official_features  # pylint: disable=g-import-not-at-top

  net = torch_official_features.FIDInceptionV3().eval()
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, torch.nn.Conv2d):
        fan_in = m.weight[0].numel()
        m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
      elif isinstance(m, torch.nn.BatchNorm2d):
        m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
        m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
        m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
        m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
      elif isinstance(m, torch.nn.Linear):
        m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 2048**-0.5)
        m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
  return net


def test_fid_inception_equals_pytorch_fid_architecture_on_the_same_weights(tmp_path):
  torch = pytest.importorskip('torch')
  net = _random_fid_inception(torch)
  path = str(tmp_path / 'pt_inception.pth')
  torch.save(net.state_dict(), path)
  params = inception.load_weights(path)
  features = inception.features_fn()
  rng = np.random.default_rng(0)
  # 48 px: upsampled to 299; 320 px: downsampled (bilinear without antialiasing, as pytorch-fid).
  for size in (48, 320):
    images = rng.integers(0, 256, size=(2, size, size, 3), dtype=np.uint8)
    pool, logits = features(params, images)
    with torch.no_grad():
      want_pool, want_logits = net(
        torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
      )
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    np.testing.assert_allclose(np.asarray(pool), want_pool.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(logits), want_logits.numpy(), atol=1e-4, rtol=0)
    assert float(np.abs(want_pool.numpy()).max()) > 0.1  # the features are not vanishing


def test_inception_weight_file_errors(tmp_path):
  with pytest.raises(inception.InceptionWeightsError, match='does not exist'):
    inception.load_weights(str(tmp_path / 'missing.pth'))
  state = {'Conv2d_1a_3x3.conv.weight': np.zeros((32, 3, 3, 3), np.float32)}
  with pytest.raises(inception.InceptionWeightsError, match=r'missing .*unexpected'):
    inception.params_from_state_dict(state)


def _fid_by_eigenvalues(mu1, s1, mu2, s2):
  """tr sqrt(S1 S2) as the sum of the square roots of S1 S2's eigenvalues (real, >= 0)."""
  eig = np.linalg.eigvals(s1 @ s2)
  return float(
    np.sum((mu1 - mu2) ** 2)
    + np.trace(s1)
    + np.trace(s2)
    - 2 * np.sum(np.sqrt(np.clip(eig.real, 0, None)))
  )


def test_frechet_distance_by_hand_and_by_eigenvalues():
  # One dimension: (m1 - m2)^2 + (sqrt(v1) - sqrt(v2))^2.
  assert distribution.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)
  # Diagonal covariances: the same per axis, summed.
  fid = distribution.frechet_distance([0, 0], np.diag([1.0, 4.0]), [1, 2], np.diag([4.0, 1.0]))
  assert fid == pytest.approx(1 + 4 + 1 + 1)
  rng = np.random.default_rng(0)
  a = rng.normal(size=(400, 16))
  b = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
  mu1, s1 = distribution.statistics(a)
  mu2, s2 = distribution.statistics(b)
  got = distribution.frechet_distance(mu1, s1, mu2, s2)
  np.testing.assert_allclose(got, _fid_by_eigenvalues(mu1, s1, mu2, s2), rtol=1e-6)
  # Identical statistics: 0.
  assert abs(distribution.frechet_distance(mu1, s1, mu1, s1)) < 1e-8 * np.trace(s1)


def test_fid_from_features_of_rank_deficient_sets_is_exact():
  rng = np.random.default_rng(3)
  a, b = rng.normal(size=(5, 12)), rng.normal(size=(7, 12)) * 1.5 + 0.2
  with pytest.warns(UserWarning, match='fewer samples than dimensions'):
    got = distribution.frechet_distance_from_features(a, b)
    stats = distribution.statistics(a) + distribution.statistics(b)
  np.testing.assert_allclose(got, _fid_by_eigenvalues(*stats), rtol=1e-6)
  with pytest.warns(UserWarning):
    assert abs(distribution.frechet_distance_from_features(a, a)) < 1e-9
  # More samples than dimensions: pytorch-fid's computation on the statistics.
  c, d = rng.normal(size=(40, 6)), rng.normal(size=(30, 6)) + 1.0
  np.testing.assert_allclose(
    distribution.frechet_distance_from_features(c, d),
    distribution.frechet_distance(*distribution.statistics(c), *distribution.statistics(d)),
    rtol=1e-10,
  )


def test_frechet_distance_edge_cases():
  rng = np.random.default_rng(1)
  with pytest.warns(UserWarning, match='fewer samples than dimensions'):
    distribution.statistics(rng.normal(size=(10, 32)))
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    distribution.statistics(rng.normal(size=(40, 32)))  # N > D: no warning
  # A product with a negative eigenvalue (an indefinite "covariance"): its square root is
  # complex, which is reported, not hidden.
  with pytest.raises(distribution.FrechetDistanceError, match='imaginary part of 1'):
    distribution.frechet_distance([0, 0], np.diag([1.0, -1.0]), [0, 0], np.eye(2))
  with pytest.raises(ValueError, match='different sizes'):
    distribution.frechet_distance([0, 0], np.eye(2), [0], np.eye(1))


def _reference_libraries(monkeypatch):
  """pytorch-fid's fid_score and clean-fid's fid modules. Both import torchvision, which does
  not import beside our CPU torch; the functions compared use numpy and scipy only, so a
  placeholder torchvision (with the Inception block classes they subclass) stands in."""
  import torch  # pylint: disable=g-import-not-at-top

  try:
    import torchvision  # noqa: F401  (present and importable: use it)
  except Exception:  # pylint: disable=broad-except
    for name in (
      'torchvision',
      'torchvision.models',
      'torchvision.models.inception',
      'torchvision.transforms',
    ):
      monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    tv = sys.modules['torchvision']
    tv.__version__ = '0.0'
    tv.models = sys.modules['torchvision.models']
    tv.transforms = sys.modules['torchvision.transforms']
    tv.models.inception = sys.modules['torchvision.models.inception']
    for block in ('InceptionA', 'InceptionC', 'InceptionE'):
      setattr(sys.modules['torchvision.models.inception'], block, torch.nn.Module)
  from cleanfid import fid as clean_fid  # pylint: disable=g-import-not-at-top
  from pytorch_fid import fid_score  # pylint: disable=g-import-not-at-top

  return fid_score, clean_fid


def test_fid_and_kid_equal_the_reference_libraries(monkeypatch):
  fid_score, clean_fid = _reference_libraries(monkeypatch)
  rng = np.random.default_rng(4)
  a = rng.normal(size=(300, 64))
  b = rng.normal(size=(240, 64)) @ rng.normal(size=(64, 64)) * 0.3 + 0.2
  mu1, s1 = distribution.statistics(a)
  mu2, s2 = distribution.statistics(b)
  # pytorch-fid's statistics: the mean and np.cov over samples.
  np.testing.assert_allclose(s1, np.cov(a, rowvar=False), rtol=1e-12)
  ours = distribution.frechet_distance(mu1, s1, mu2, s2)
  assert ours > 1.0
  np.testing.assert_allclose(
    ours, fid_score.calculate_frechet_distance(mu1, s1, mu2, s2), rtol=1e-6
  )
  np.testing.assert_allclose(ours, clean_fid.frechet_distance(mu1, s1, mu2, s2), rtol=1e-6)
  # KID: one subset of every vector takes the sampling out; what is left is the estimator.
  x, y = a[:200], b[:200]
  kid, _ = distribution.kernel_inception_distance(x, y, num_subsets=1, max_subset_size=200)
  assert kid > 0.01
  np.testing.assert_allclose(
    kid, clean_fid.kernel_distance(x, y, num_subsets=1, max_subset_size=200), rtol=1e-6
  )


def _mmd_by_loops(x, y):
  m, d = len(x), x.shape[1]
  k = lambda a, b: (a @ b / d + 1.0) ** 3
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
  return xx + yy - 2 * xy


def test_kid_is_the_unbiased_polynomial_mmd():
  rng = np.random.default_rng(2)
  x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.5
  # One subset of every vector: no sampling, the estimator itself.
  kid, std = distribution.kernel_inception_distance(x, y, num_subsets=1, max_subset_size=12)
  np.testing.assert_allclose(kid, _mmd_by_loops(x, y), rtol=1e-10)
  assert std == 0.0
  # Subsets: the mean of the estimator over the drawn subsets.
  kid, std = distribution.kernel_inception_distance(x, y, num_subsets=20, max_subset_size=6)
  draw = np.random.default_rng(0)
  want = []
  for _ in range(20):
    xs, ys = x[draw.choice(12, 6, replace=False)], y[draw.choice(12, 6, replace=False)]
    want.append(_mmd_by_loops(xs, ys))
  np.testing.assert_allclose([kid, std], [np.mean(want), np.std(want)], rtol=1e-10)
  # Unbiased: near 0 for two samples of one distribution, far above for different ones.
  a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
  same = distribution.kernel_inception_distance(a, b, num_subsets=10, max_subset_size=200)[0]
  other = distribution.kernel_inception_distance(a, b + 1.0, num_subsets=10, max_subset_size=200)[0]
  assert abs(same) < 0.05 * other


def test_inception_score_by_hand():
  # Confident predictions spread evenly over 4 classes in every split: IS = 4.
  logits = np.full((40, 1008), -1e4)
  logits[np.arange(40), np.arange(40) % 4] = 0.0
  score, std = distribution.inception_score(logits, splits=10)
  assert score == pytest.approx(4.0) and std == pytest.approx(0.0, abs=1e-9)
  # Every image the same distribution: p(y|x) = p(y), IS = 1.
  score, _ = distribution.inception_score(
    np.random.default_rng(0).normal(size=(1, 1008)).repeat(20, axis=0), splits=2
  )
  assert score == pytest.approx(1.0)
  with pytest.raises(ValueError, match='at least 10 images'):
    distribution.inception_score(logits[:5])
