"""Losses on cases solvable by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpr_gan.objectives import losses


def test_gradient_penalty_linear_critic():
  # D(x) = sum(w * x): grad = w everywhere, ||w|| = 0.75 * sqrt(16) = 3, so GP = (3 - 1)^2 = 4.
  w = jnp.full((2, 2, 4), 0.75)
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  real = jnp.ones((5, 2, 2, 4))
  fake = -jnp.ones((5, 2, 2, 4))
  alpha = jnp.linspace(0, 1, 5).reshape(5, 1, 1, 1)
  np.testing.assert_allclose(losses.gradient_penalty(critic, real, fake, alpha), 4.0, rtol=1e-6)


def test_gradient_penalty_quadratic_critic():
  # D(x) = 0.5 * ||x||^2 per sample: grad = x_hat = (2a - 1) * ones(8) for real=1, fake=-1,
  # so ||grad|| = |2a - 1| * sqrt(8).
  critic = lambda x: 0.5 * jnp.sum(x * x, axis=(1, 2, 3))
  alpha = jnp.array([0.0, 0.25, 1.0]).reshape(3, 1, 1, 1)
  real, fake = jnp.ones((3, 2, 2, 2)), -jnp.ones((3, 2, 2, 2))
  norms = np.abs(2 * np.array([0.0, 0.25, 1.0]) - 1) * np.sqrt(8)
  expected = np.mean((norms - 1) ** 2)
  np.testing.assert_allclose(
    losses.gradient_penalty(critic, real, fake, alpha), expected, rtol=1e-6
  )


def test_wgan_losses():
  real, fake = jnp.array([1.0, 3.0]), jnp.array([-2.0, 0.0])
  assert float(losses.wgan_critic(real, fake)) == -1.0 - 2.0
  assert float(losses.wgan_generator(fake)) == 1.0


def test_cross_entropies():
  # Uniform logits over 4 classes: CE = log 4.
  np.testing.assert_allclose(
    losses.softmax_cross_entropy(jnp.zeros((3, 4)), jnp.array([0, 1, 3])), np.log(4), rtol=1e-6
  )
  # Two attributes with logit 0: BCE = 2 log 2 per sample.
  np.testing.assert_allclose(
    losses.sigmoid_cross_entropy(jnp.zeros((2, 2)), jnp.ones((2, 2))), 2 * np.log(2), rtol=1e-6
  )
  assert float(losses.l1(jnp.zeros(4), jnp.array([1.0, -1.0, 2.0, 0.0]))) == 1.0


def test_learning_rate_constant_then_linear_decay_to_zero():
  from jaxpr_gan.training import state as state_lib  # pylint: disable=g-import-not-at-top

  lr = [
    float(state_lib.learning_rate(1e-4, jnp.asarray(s), num_steps=10, num_decay_steps=4))
    for s in (0, 6, 7, 8, 10)
  ]
  np.testing.assert_allclose(lr, [1e-4, 1e-4, 0.75e-4, 0.5e-4, 0.0], rtol=1e-6)
  assert float(state_lib.learning_rate(3e-4, jnp.asarray(5), 10, 0)) == np.float32(3e-4)


def test_label_losses_by_hand():
  zeros = jnp.zeros((2, 4, 4, 1))
  assert float(losses.binary_cross_entropy(zeros, 1.0)) == pytest.approx(np.log(2.0))
  assert float(losses.least_squares(zeros + 3.0, 0.0)) == pytest.approx(9.0)
  assert float(losses.least_squares(zeros + 3.0, 1.0)) == pytest.approx(4.0)
  # softplus(-x) for a real label: large logits cost almost nothing.
  assert float(losses.binary_cross_entropy(zeros + 20.0, 1.0)) == pytest.approx(
    np.exp(-20.0), rel=1e-3
  )


def test_r1_penalty_of_a_linear_critic_is_half_the_squared_weight_norm():
  w = jnp.arange(12.0).reshape(1, 2, 2, 3) / 10.0
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  real = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 2, 3))
  assert float(losses.r1_penalty(critic, real)) == pytest.approx(0.5 * float(jnp.sum(w**2)))


def test_diversity_and_ramp_by_hand():
  a, b = jnp.zeros((2, 2, 2, 3)), jnp.stack([jnp.full((2, 2, 3), 0.5), jnp.full((2, 2, 3), 1.0)])
  assert float(losses.diversity(a, b)) == pytest.approx(0.75)
  assert float(losses.diversity(a, b, jnp.array([2.0, 0.0]))) == pytest.approx(0.5)
  ramp = lambda s: float(losses.ramp(s, 1.0, 1.5, 10))
  assert [ramp(0), ramp(5), ramp(10), ramp(20)] == pytest.approx([1.0, 1.25, 1.5, 1.5])
  assert float(losses.ramp(3, 0.0, 1.0, 0)) == 1.0  # no ramp: the end value
