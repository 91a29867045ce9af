"""Network shapes and parameter counts against the official StarGAN code."""

import jax
import jax.numpy as jnp
import pytest

from jaxpr_gan.models import count_params
from jaxpr_gan.models import stargan


def test_stargan_parameter_counts_match_official_code():
  # yunjey/stargan with c_dim=5 at 128 px: G 8,430,528 and D 44,762,048 parameters.
  x = jnp.zeros((1, 128, 128, 3))
  assert count_params(stargan.Generator(), x, jnp.zeros((1, 5))) == 8_430_528
  assert count_params(stargan.Discriminator(image_size=128, num_classes=5), x) == 44_762_048


def test_stargan_output_shapes():
  g = stargan.Generator(conv_dim=4, num_blocks=1)
  d = stargan.Discriminator(image_size=32, num_classes=7, conv_dim=4, repeat_num=4)
  x = jnp.zeros((3, 32, 32, 3))
  gp = g.init(jax.random.PRNGKey(0), x, jnp.zeros((3, 7)))
  y = g.apply(gp, x, jnp.ones((3, 7)))
  assert y.shape == (3, 32, 32, 3)
  assert float(jnp.max(jnp.abs(y))) <= 1.0  # tanh output
  src, cls = d.apply(d.init(jax.random.PRNGKey(1), x), x)
  assert src.shape == (3, 2, 2, 1)  # 32 / 2**4 PatchGAN map
  assert cls.shape == (3, 7)


def test_discriminator_rejects_size_not_divisible():
  d = stargan.Discriminator(image_size=48, num_classes=5, conv_dim=4, repeat_num=5)
  with pytest.raises(ValueError, match='multiple of 2\\*\\*repeat_num'):
    d.init(jax.random.PRNGKey(0), jnp.zeros((1, 48, 48, 3)))
