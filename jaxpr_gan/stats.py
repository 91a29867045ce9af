"""Statistics of repeated runs: the mean over seeds with a t-based 95% confidence interval, and
Welch's t-test between two settings with the Holm-Bonferroni correction across all the pairs of
one metric; `summarise` and `markdown` apply them to a sweep's points and seeds
(`python -m jaxpr_gan.sweep`, docs/sweeps.md).

A statistic that needs two values or more (a standard deviation, an interval, a p-value) is None
where there are fewer: JSON writes it as null and results.md as '—'.
"""

from collections.abc import Mapping, Sequence
import itertools
import math

import numpy as np
from scipy import stats as scipy_stats

# Metrics where a lower value is better (substrings of dotted names); all others: higher.
LOWER_IS_BETTER = ('l1', 'fid', 'kid', 'lpips', 'loss', 'error', 'mse')


def higher_is_better(metric: str) -> bool:
  """The direction of a metric by its name: L1, FID, KID, LPIPS, losses lower; rates, PSNR,
  SSIM, accuracies, IS higher."""
  name = metric.lower()
  return not any(part in name for part in LOWER_IS_BETTER)


def summary(values: Sequence[float]) -> dict:
  """-> {n, mean, std (sample, ddof 1), ci95 (half-width, Student t with n - 1 dof), low, high};
  std, ci95, low and high are None for n = 1, everything but n for n = 0."""
  x = np.asarray(values, np.float64)
  n = int(x.size)
  out = dict(n=n, mean=None, std=None, ci95=None, low=None, high=None)
  if n == 0:
    return out
  out['mean'] = float(x.mean())
  if n < 2:
    return out
  std = float(x.std(ddof=1))
  ci = float(scipy_stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
  out.update(std=std, ci95=ci, low=out['mean'] - ci, high=out['mean'] + ci)
  return out


def welch(a: Sequence[float], b: Sequence[float]) -> dict:
  """Welch's two-sample t-test of mean(a) = mean(b): -> {diff (mean a - mean b), t, dof, p}.

  t, dof and p are None when either sample has fewer than two values. Two samples without
  spread are told apart exactly: p 0 when their means differ (t infinite), 1 when equal."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  diff = float(a.mean() - b.mean()) if a.size and b.size else None
  if a.size < 2 or b.size < 2:
    return dict(diff=diff, t=None, dof=None, p=None)
  va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
  if va + vb == 0:
    t = math.copysign(math.inf, diff) if diff else 0.0
    return dict(diff=diff, t=t, dof=None, p=0.0 if diff else 1.0)
  dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
  result = scipy_stats.ttest_ind(a, b, equal_var=False)
  return dict(diff=diff, t=float(result.statistic), dof=float(dof), p=float(result.pvalue))


def holm(p_values: Sequence[float | None], alpha: float = 0.05) -> list[tuple[float, bool]]:
  """Holm-Bonferroni step-down over the p-values that are not None: -> per p, (adjusted p,
  significant); None p-values are left out of the family and give (None, False).

  Sorted ascending, the k-th smallest (from 0) of m is rejected if it and every smaller one
  satisfy p <= alpha / (m - k); the adjusted p is max over j <= k of min(1, (m - j) p_j)."""
  present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
  m = len(present)
  out: list[tuple[float | None, bool]] = [(None, False)] * len(p_values)
  running, rejecting = 0.0, True
  for k, (p, i) in enumerate(present):
    running = max(running, min(1.0, (m - k) * p))
    rejecting = rejecting and p <= alpha / (m - k)
    out[i] = (running, rejecting)
  return out


def pairwise(
  points: Mapping[str, Sequence[float]], higher_is_better: bool = True, alpha: float = 0.05
) -> list[dict]:
  """Welch's test for every pair of points of one metric, Holm-corrected across the pairs.

  -> per pair (a, b) in the order of `points`: {a, b, diff (mean a - mean b), t, dof, p,
  p_holm, significant, better}; `better` names the point with the better mean (by
  `higher_is_better`), None when the means are equal or missing."""
  pairs = list(itertools.combinations(points, 2))
  tests = [welch(points[a], points[b]) for a, b in pairs]
  corrected = holm([t['p'] for t in tests], alpha)
  out = []
  for (a, b), test, (p_holm, significant) in zip(pairs, tests, corrected):
    diff = test['diff']
    better = None
    if diff:
      better = a if (diff > 0) == higher_is_better else b
    out.append(dict(a=a, b=b, **test, p_holm=p_holm, significant=significant, better=better))
  return out


def summarise(
  points: Sequence[Mapping], values: Mapping[str, Mapping[int, Mapping[str, float]]], alpha=0.05
) -> dict:
  """-> {points: [{name, overrides, ..., seeds, metrics: {metric: summary + values}}],
  comparisons: {metric: {higher_is_better, pairs}}} over the points of `values` (by name)."""
  out_points, by_metric = [], {}
  for point in points:
    seeds = values.get(point['name'], {})
    metrics = {}
    for _, flat in sorted(seeds.items()):
      for metric, v in flat.items():
        metrics.setdefault(metric, []).append(v)
    described = dict(point, seeds=sorted(seeds), metrics={})
    for metric, vs in metrics.items():
      described['metrics'][metric] = dict(summary(vs), values=vs)
      by_metric.setdefault(metric, {})[point['name']] = vs
    out_points.append(described)
  comparisons = {}
  for metric, per_point in by_metric.items():
    up = higher_is_better(metric)
    pairs = pairwise(per_point, up, alpha) if len(per_point) > 1 else []
    comparisons[metric] = dict(higher_is_better=up, pairs=pairs)
  return dict(alpha=alpha, points=out_points, comparisons=comparisons)


def markdown(results: Mapping) -> str:
  """A table per main metric (mean ± ci95, std, n per point), then the significant differences
  of every metric."""
  lines = ['# Sweep results', '']
  lines += [
    'Mean over seeds ± the half-width of its 95% confidence interval (Student t), the sample '
    "standard deviation and the number of seeds; '—' needs two seeds or more.",
    '',
  ]
  for metric in results['main_metrics']:
    up = results['comparisons'][metric]['higher_is_better']
    lines += [f'## {metric} ({"higher" if up else "lower"} is better)', '']
    lines += ['| point | mean ± ci95 | std | n |', '|---|---|---|---|']
    for p in results['points']:
      s = p['metrics'].get(metric)
      if s:
        mean = f'{number(s["mean"])} ± {number(s["ci95"])}'
        lines.append(f'| {p["name"]} | {mean} | {number(s["std"])} | {s["n"]} |')
    lines.append('')
  lines += _significant(results)
  return '\n'.join(lines)


def _significant(results: Mapping) -> list[str]:
  alpha = results['alpha']
  lines = [
    '## Significant differences',
    '',
    f"Welch's t-test per pair of points, Holm-Bonferroni corrected over the pairs of each "
    f'metric, at alpha {alpha}.',
    '',
  ]
  main = list(results['main_metrics'])
  found = 0
  for metric in main + sorted(set(results['comparisons']) - set(main)):
    for c in results['comparisons'][metric]['pairs']:
      if c['significant']:
        found += 1
        worse = c['b'] if c['better'] == c['a'] else c['a']
        lines.append(
          f'- {metric}: {c["better"]} better than {worse} by {number(abs(c["diff"]))} '
          f'(p {number(c["p"])}, Holm {number(c["p_holm"])})'
        )
  return lines + ([''] if found else ['None.', ''])


def number(x: float | None) -> str:
  """4 significant digits; '—' for a statistic that needs more seeds."""
  return '—' if x is None else f'{x:.4g}'
