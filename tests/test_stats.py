"""Statistics of repeated runs against values worked out by hand: the t interval, Welch's test,
Holm's step-down and the direction of each metric."""

import math

import pytest
from scipy import special

from jaxpr_gan import stats

T_975_2 = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom (tables)


def test_summary_of_one_two_three():
  s = stats.summary([1.0, 2.0, 3.0])
  assert s['n'] == 3 and s['mean'] == 2.0 and s['std'] == pytest.approx(1.0)
  assert s['ci95'] == pytest.approx(T_975_2 / math.sqrt(3), rel=1e-9)
  assert s['low'] == pytest.approx(2.0 - s['ci95']) and s['high'] == pytest.approx(2 + s['ci95'])


def test_summary_of_one_value_has_no_spread_and_of_none_no_mean():
  assert stats.summary([0.5]) == dict(n=1, mean=0.5, std=None, ci95=None, low=None, high=None)
  assert stats.summary([])['mean'] is None


def test_welch_against_the_hand_computation():
  # a: mean 2, var 1; b: mean 16/3, var 7/3. se^2 = 1/3 + 7/9 = 10/9, so t = -(10/3)/sqrt(10/9)
  # = -sqrt(10); dof = (10/9)^2 / ((1/3)^2/2 + (7/9)^2/2) = 100/29; the two-sided p of t with
  # nu dof is the regularised incomplete beta I_{nu/(nu+t^2)}(nu/2, 1/2), here x = 10/39.
  w = stats.welch([1, 2, 3], [4, 5, 7])
  assert w['diff'] == pytest.approx(-10 / 3)
  assert w['t'] == pytest.approx(-math.sqrt(10))
  assert w['dof'] == pytest.approx(100 / 29)
  assert w['p'] == pytest.approx(special.betainc(50 / 29, 0.5, 10 / 39), rel=1e-9)


def test_welch_without_enough_values_or_spread():
  assert stats.welch([1.0], [2.0, 3.0]) == dict(diff=-1.5, t=None, dof=None, p=None)
  assert stats.welch([1, 1], [2, 2])['p'] == 0.0  # exact, different: t is infinite
  assert stats.welch([1, 1], [1, 1])['p'] == 1.0


def test_holm_steps_down_and_adjusts():
  # Sorted: 0.01 (x3 = 0.03 <= 0.05 rejected), 0.03 (x2 = 0.06 > 0.05: stop), 0.04 (x1, but
  # after a failure; adjusted max(0.06, 0.04) = 0.06).
  assert stats.holm([0.04, 0.01, 0.03]) == [
    pytest.approx((0.06, False)),
    pytest.approx((0.03, True)),
    pytest.approx((0.06, False)),
  ]
  # 0.001 x3, 0.02 x2 = 0.04 rejected, 0.045 x1 rejected; None stays out of the family.
  got = stats.holm([0.045, None, 0.02, 0.001])
  assert [g[1] for g in got] == [True, False, True, True]
  assert got[1] == (None, False)
  assert [g[0] for g in got if g[0] is not None] == pytest.approx([0.045, 0.04, 0.003])


def test_pairwise_names_the_better_point_by_direction_and_corrects():
  points = {
    'a': [0.90, 0.91, 0.92],
    'b': [0.50, 0.51, 0.52],  # far from a: significant after the correction
    'c': [0.90, 0.92, 0.94],  # as good as a
  }
  up = {(c['a'], c['b']): c for c in stats.pairwise(points, higher_is_better=True)}
  assert up['a', 'b']['significant'] and up['a', 'b']['better'] == 'a'
  assert up['b', 'c']['significant'] and up['b', 'c']['better'] == 'c'
  assert not up['a', 'c']['significant']
  assert all(c['p_holm'] >= c['p'] for c in up.values())
  down = {(c['a'], c['b']): c for c in stats.pairwise(points, higher_is_better=False)}
  assert down['a', 'b']['better'] == 'b'


def test_direction_of_the_metrics():
  for name in (
    'improvement_rate',
    'psnr',
    'ssim',
    'judge.translation.target_accuracy',
    'per_target.happy',
  ):
    assert stats.higher_is_better(name), name
  for name in ('paired_l1', 'same_class.paired_l1', 'distribution.fid', 'lpips.mean'):
    assert not stats.higher_is_better(name), name
