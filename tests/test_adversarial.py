"""The adversarial-loss component: each kind's D and G terms by hand, the penalties (lazy R1
included), and every model training with every kind."""

import functools
import importlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpr_gan import config_validation
from jaxpr_gan import registry
from jaxpr_gan.objectives import adversarial
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib
from tests import reference_values

KINDS = ('wgan_gp', 'hinge', 'ns', 'bce', 'lsgan')
LN3 = float(np.log(3.0))


@pytest.mark.parametrize(
  'kind,real,fake,d_want,g_want',
  [
    # E[D(fake)] - E[D(real)] = 0 - 2; G: -E[D(fake)] = 0
    ('wgan_gp', [1.0, 3.0], [-1.0, 1.0], -2.0, 0.0),
    # E[relu(1 - [1, 3])] + E[relu(1 + [-1, 1])] = 0 + 1; G: -E[D(fake)]
    ('hinge', [1.0, 3.0], [-1.0, 1.0], 1.0, 0.0),
    ('hinge', [0.5, -1.0], [-3.0, 2.0], 1.25 + 1.5, 0.5),
    # softplus(-ln 3) = ln(4/3), softplus(ln 3) = ln 4; G: softplus(-ln 3) = ln(4/3)
    ('ns', [LN3], [LN3], float(np.log(16 / 3)), float(np.log(4 / 3))),
    ('bce', [LN3], [LN3], float(np.log(16 / 3)), float(np.log(4 / 3))),
    ('ns', [0.0, 0.0], [0.0, 0.0], float(2 * np.log(2)), float(np.log(2))),
    # E[(D(real) - 1)^2] + E[D(fake)^2] = 2 + 1; G: E[(D(fake) - 1)^2] = 2
    ('lsgan', [1.0, 3.0], [-1.0, 1.0], 3.0, 2.0),
  ],
)
def test_each_kind_by_hand(kind, real, fake, d_want, g_want):
  k = adversarial.get(kind)
  as_map = lambda v: jnp.asarray(v, jnp.float32).reshape(-1, 1, 1, 1)  # a PatchGAN map
  assert float(k.critic(as_map(real), as_map(fake))) == pytest.approx(d_want, rel=1e-6, abs=1e-6)
  assert float(k.generator(as_map(fake))) == pytest.approx(g_want, rel=1e-6, abs=1e-6)


def test_bce_and_ns_are_one_loss_in_two_writings():
  logits = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 3, 3, 1)) * 4
  a, b = adversarial.get('bce'), adversarial.get('ns')
  np.testing.assert_allclose(a.critic(*logits), b.critic(*logits), rtol=1e-6)
  np.testing.assert_allclose(a.generator(logits[1]), b.generator(logits[1]), rtol=1e-6)


W = jnp.arange(12.0).reshape(1, 2, 2, 3) / 10.0  # the linear critic's weights: ||W||^2 = 5.06
_critic = lambda x: jnp.sum(x * W, axis=(1, 2, 3))  # its input gradient is W for every input


def _terms(loss, step=0):
  real, fake = jnp.ones((2, 2, 2, 3)), jnp.zeros((2, 2, 2, 3))
  return loss.critic_loss(
    _critic, real, fake, _critic(real), _critic(fake), jax.random.PRNGKey(0), jnp.asarray(step)
  )


def test_penalties_of_a_critic_whose_gradient_is_known():
  norm2 = float(jnp.sum(W**2))
  adv, penalty, metrics = _terms(adversarial.Adversarial('wgan_gp', lambda_gp=10.0))
  assert float(metrics['gp']) == pytest.approx((np.sqrt(norm2) - 1) ** 2, rel=1e-5)
  assert float(penalty) == pytest.approx(10 * (np.sqrt(norm2) - 1) ** 2, rel=1e-5)
  assert float(adv) == pytest.approx(-float(jnp.sum(W)), rel=1e-6)  # E[D(0)] - E[D(1)]
  adv, penalty, metrics = _terms(adversarial.Adversarial('hinge', lambda_r1=2.0))
  assert set(metrics) == {'r1'} and float(metrics['r1']) == pytest.approx(0.5 * norm2, rel=1e-5)
  assert float(penalty) == pytest.approx(norm2, rel=1e-5)
  # No penalty at all: none computed.
  assert _terms(adversarial.Adversarial('lsgan'))[1:] == (None, {})
  assert _terms(adversarial.Adversarial('wgan_gp', lambda_gp=0.0))[1:] == (None, {})


def test_lazy_r1_every_k_steps_weighted_k_times():
  lazy = adversarial.Adversarial('ns', lambda_r1=1.0, r1_every=4)
  norm2 = float(jnp.sum(W**2))
  for step, want in ((0, 4 * 0.5 * norm2), (1, 0.0), (3, 0.0), (4, 4 * 0.5 * norm2)):
    _, penalty, _ = _terms(lazy, step)
    assert float(penalty) == pytest.approx(want, rel=1e-5), step
  # Its gradient flows on the steps it runs (D's parameters here: the critic's weights).
  grad = jax.grad(
    lambda w: lazy.critic_loss(
      lambda x: jnp.sum(x * w, axis=(1, 2, 3)),
      jnp.ones((2, 2, 2, 3)),
      jnp.zeros((2, 2, 2, 3)),
      jnp.zeros(2),
      jnp.zeros(2),
      jax.random.PRNGKey(0),
      jnp.asarray(8),
    )[1]
  )(W)
  np.testing.assert_allclose(grad, 4 * W, rtol=1e-5)  # d/dW of 4 * 0.5 ||W||^2


def test_unknown_kind_lists_the_known():
  assert set(KINDS) <= set(adversarial.kinds())  # and any a test file registered
  with pytest.raises(
    ValueError,
    match=re.escape(f"unknown adversarial loss 'wasserstein'; use one of {adversarial.kinds()}"),
  ):
    adversarial.get('wasserstein')


def _tiny_config(model: str, kind: str):
  """configs/<model>.py:tiny with --config.loss.adversarial=kind, n_critic 1."""
  config = importlib.import_module(f'configs.{model}').get_config('tiny')
  config.loss.adversarial = kind
  config.n_critic = 1
  return config


def _two_steps(config):
  """Two iterations of the compiled D and G steps on one device; -> (metrics, D before, after)."""
  objective = registry.build(config, config.data.num_classes)
  mesh = steps_lib.make_mesh(jax.devices()[:1])
  init = functools.partial(state_lib.init_state, objective, config)
  d_step, g_step, sharding, batch_sharding = steps_lib.compile_steps(
    objective, config, mesh, jax.eval_shape(init)
  )
  state = jax.jit(init, out_shardings=sharding)()
  before = jax.device_get(state.params['d'])
  batch = {
    k: jax.device_put(v, batch_sharding[k])
    for k, v in reference_values.batch_for(objective, config).items()
  }
  history = []
  for step in range(2):
    rng = jax.random.fold_in(state.rng, step)
    state, d_metrics = d_step(state, batch, rng)
    state, g_metrics = g_step(state, batch, rng)
    history.append(jax.device_get({**d_metrics, **g_metrics}))
  return history, before, jax.device_get(state.params['d'])


# Every kind on StarGAN; on the other families (two_domain, reference) the gradient-penalty kind
# and a plain one; on StarGAN's descendants, whose objective is StarGAN's, one other kind: what
# the kind changes is the shared component, the same code in every objective of a family.
_KINDS_OF = {
  'stargan': KINDS,
  'cyclegan': ('wgan_gp', 'hinge'),
  'twocet': ('wgan_gp', 'lsgan'),
  'sargan': ('hinge',),
  'mmagan': ('lsgan',),
  'dcam': ('ns',),
}


@pytest.mark.parametrize('model', list(_KINDS_OF))
def test_every_model_trains_two_steps_with_other_adversarial_kinds(model):
  d_losses = {}
  for kind in _KINDS_OF[model]:
    config = _tiny_config(model, kind)
    config_validation.validate(config, 1, None)
    history, before, after = _two_steps(config)
    for metrics in history:
      assert metrics['D/nonfinite_steps'] == 0 and metrics['G/nonfinite_steps'] == 0, kind
      assert np.isfinite(metrics['D/loss']) and np.isfinite(metrics['G/loss']), kind
    moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before))]
    assert max(moved) > 0, kind
    penalties = {
      k.split('/')[1].split('_')[0] for k in history[0] if k.startswith(('D/gp', 'D/r1'))
    }
    want = ({'gp'} if kind == 'wgan_gp' else set()) | ({'r1'} if config.loss.lambda_r1 else set())
    assert penalties == want, (kind, penalties)
    d_losses[kind] = float(history[0]['D/loss'])
  if model != 'stargan':
    return
  # The kind is what D optimises: each gives its own loss (bce and ns, one loss, agree).
  assert d_losses['bce'] == pytest.approx(d_losses['ns'], rel=1e-5)
  distinct = [d_losses[k] for k in ('wgan_gp', 'hinge', 'ns', 'lsgan')]
  assert len({round(v, 4) for v in distinct}) == 4, d_losses
