"""Distribution metrics on Inception features: FID, KID and IS, as the literature computes them.

FID  Heusel et al. 2017, as pytorch-fid: ||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrt(S1 S2)), float64.
KID  Binkowski et al. 2018: the unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3,
     averaged over random subsets (as clean-fid and torch-fidelity: 100 subsets of at most
     1000), reported with its standard deviation over subsets.
IS   Salimans et al. 2016: exp(E KL(p(y|x) || p(y))) over the 1008-way softmax, in 10 splits,
     mean and standard deviation over splits.
"""

import warnings

import numpy as np
from scipy import linalg
from scipy import special


class FrechetDistanceError(ArithmeticError):
  """sqrt(S1 S2) came out complex with a large imaginary part: the statistics are unreliable."""


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(N, D) features -> (mean (D,), covariance (D, D)), float64; warns when N <= D, where the
  covariance is singular and FID is biased and unstable."""
  features = np.asarray(features, np.float64)
  n, d = features.shape
  if n < 2:
    raise ValueError(f'FID needs at least 2 feature vectors, got {n}')
  if n <= d:
    warnings.warn(
      f'FID from {n} samples of {d}-dimensional features: fewer samples than '
      'dimensions makes the covariance singular and FID biased; use more images '
      '(at least 10,000 is the usual practice).',
      UserWarning,
      stacklevel=2,
    )
  return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
  mu1, sigma1, mu2, sigma2, eps: float = 1e-6, max_imaginary: float = 1e-3
) -> float:
  """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2); pytorch-fid's computation: the
  matrix square root by scipy, an eps offset on the diagonals when it is not finite, and an
  error when its diagonal has an imaginary part above `max_imaginary`."""
  mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
  sigma1 = np.atleast_2d(sigma1).astype(np.float64)
  sigma2 = np.atleast_2d(sigma2).astype(np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ValueError(
      f'statistics of different sizes: {mu1.shape} / {mu2.shape}, {sigma1.shape} / {sigma2.shape}'
    )
  diff = mu1 - mu2
  covmean = linalg.sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    warnings.warn(
      f'FID: singular product of covariances; adding {eps} to their diagonals.',
      UserWarning,
      stacklevel=2,
    )
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    imaginary = np.abs(np.diagonal(covmean).imag).max()
    if imaginary > max_imaginary:
      raise FrechetDistanceError(
        f'FID: sqrt(S1 S2) has an imaginary part of {imaginary:.3g} on its diagonal (largest '
        f'anywhere {np.abs(covmean.imag).max():.3g}); the covariances are ill-conditioned, '
        'usually from too few images.'
      )
    covmean = covmean.real
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
  """FID of two feature sets. With fewer samples than dimensions (a covariance of rank < D),
  tr sqrt(S1 S2) is computed exactly as the nuclear norm of A1 A2^T, where S_i = A_i^T A_i and
  A_i are the centred features / sqrt(N_i - 1): the square roots of S1 S2's eigenvalues are
  A1 A2^T's singular values. This takes an N1 x N2 SVD instead of a D x D matrix square root,
  which for singular covariances is also inaccurate. Otherwise `frechet_distance`."""
  f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
  (n1, d), n2 = f1.shape, len(f2)
  if min(n1, n2) > d:
    return frechet_distance(*statistics(f1), *statistics(f2))
  for n in (n1, n2):
    if n < 2:
      raise ValueError(f'FID needs at least 2 feature vectors, got {n}')
  warnings.warn(
    f'FID from {min(n1, n2)} samples of {d}-dimensional features: fewer samples '
    'than dimensions makes the covariance singular and FID biased; use more images '
    '(at least 10,000 is the usual practice).',
    UserWarning,
    stacklevel=2,
  )
  mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
  a1, a2 = (f1 - mu1) / np.sqrt(n1 - 1), (f2 - mu2) / np.sqrt(n2 - 1)
  tr_covmean = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
  diff = mu1 - mu2
  return float(diff @ diff + np.sum(a1 * a1) + np.sum(a2 * a2) - 2.0 * tr_covmean)


def kernel_inception_distance(
  features1: np.ndarray,
  features2: np.ndarray,
  num_subsets: int = 100,
  max_subset_size: int = 1000,
  seed: int = 0,
) -> tuple[float, float]:
  """-> (KID, its standard deviation over subsets). Each subset draws m = min(N1, N2,
  max_subset_size) vectors without replacement from each set."""
  x_all = np.asarray(features1, np.float64)
  y_all = np.asarray(features2, np.float64)
  d = x_all.shape[1]
  m = min(len(x_all), len(y_all), max_subset_size)
  if m < 2:
    raise ValueError(f'KID needs at least 2 feature vectors per set, got {m}')
  rng = np.random.default_rng(seed)
  values = []
  for _ in range(num_subsets):
    x = x_all[rng.choice(len(x_all), m, replace=False)]
    y = y_all[rng.choice(len(y_all), m, replace=False)]
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    values.append(within - 2.0 * k_xy.sum() / (m * m))
  return float(np.mean(values)), float(np.std(values))


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
  """-> (IS, standard deviation over `splits` equal parts of the samples)."""
  logits = np.asarray(logits, np.float64)
  if len(logits) < splits:
    raise ValueError(f'IS with {splits} splits needs at least {splits} images, got {len(logits)}')
  p = special.softmax(logits, axis=1)
  scores = []
  for part in np.array_split(p, splits):
    kl = special.rel_entr(part, part.mean(axis=0, keepdims=True)).sum(axis=1)  # 0 log 0 = 0
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))
