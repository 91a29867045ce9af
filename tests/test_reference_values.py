"""Every model's losses, gradients, train step and translation against the fingerprints recorded
before the 2026-12-05 restructuring (registry, shared adversarial loss, nn/, evaluation/,
tools/): the same bits on the CPU kind they were recorded on.

tests/data/reference_{tiny,paper}.json were written by `python -m tests.reference_values`; the
tiny configs run here, the paper-size ones (about 10 minutes) with JAXPR_GAN_PAPER_REFERENCE=1.
On another CPU kind XLA:CPU may sum in another order: there the losses and metrics must agree
to 1e-5 and every gradient's norm to 1e-4 (relative), and the test says which check it made.
"""

import json
import os
import warnings

import numpy as np
import pytest

from tests import reference_values

DATA = os.path.join(os.path.dirname(__file__), 'data')


def _recorded(tier: str) -> dict:
  with open(os.path.join(DATA, f'reference_{tier}.json')) as f:
    return json.load(f)


def _leaves(tree, path=''):
  """(path, value) of a fingerprint: hex floats, and [sha256, norm] pairs."""
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _leaves(v, f'{path}/{k}')
  else:
    yield path, tree


def _float(hex_value: str) -> float:
  return float(np.frombuffer(bytes.fromhex(hex_value), np.float32)[0])


def _compare(recorded: dict, now: dict, exact: bool) -> None:
  want, got = dict(_leaves(recorded)), dict(_leaves(now))
  assert sorted(got) == sorted(want)
  for path, value in want.items():
    if exact:
      assert got[path] == value, path
    elif isinstance(value, list):  # a gradient or parameter leaf: its norm
      assert got[path][1] == pytest.approx(value[1], rel=1e-4, abs=1e-7), path
    else:
      assert _float(got[path]) == pytest.approx(_float(value), rel=1e-5, abs=1e-7), path


def _check(tier: str, case: str) -> None:
  recorded = _recorded(tier)
  exact = recorded['machine'] == reference_values.machine()
  if not exact:
    warnings.warn(
      f'recorded on {recorded["machine"]}, running on {reference_values.machine()}: '
      'comparing values within tolerance, not bits',
      stacklevel=2,
    )
  now = reference_values.fingerprint(case, with_step=tier == 'tiny')
  _compare(recorded['cases'][case], now, exact)


@pytest.mark.parametrize('case', reference_values.TINY)
def test_tiny_configs_give_the_recorded_losses_gradients_steps_and_translations(case):
  _check('tiny', case)


@pytest.mark.skipif(
  not os.environ.get('JAXPR_GAN_PAPER_REFERENCE'),
  reason='paper sizes take about 10 minutes: set JAXPR_GAN_PAPER_REFERENCE=1',
)
@pytest.mark.parametrize('case', reference_values.PAPER)
def test_paper_configs_give_the_recorded_losses_gradients_and_translations(case):
  _check('paper', case)


def test_the_comparison_sees_a_one_bit_change():
  recorded = _recorded('tiny')['cases']['stargan:tiny']
  changed = json.loads(json.dumps(recorded))
  leaf = changed['g']['grads']["['Conv_0']['kernel']"]
  leaf[0] = ('0' if leaf[0][0] != '0' else '1') + leaf[0][1:]
  with pytest.raises(AssertionError):
    _compare(recorded, changed, exact=True)
  changed = json.loads(json.dumps(recorded))
  loss = np.frombuffer(bytes.fromhex(changed['d']['loss']), np.float32)[0]
  changed['d']['loss'] = np.float32(loss * (1 + 1e-3)).tobytes().hex()
  with pytest.raises(AssertionError):
    _compare(recorded, changed, exact=False)
