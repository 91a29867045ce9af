"""SARGAN: parameter counts against the official code, the image residual, the config variants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import sargan as sargan_config
from jaxpr_gan import registry
from jaxpr_gan.models import count_params
from jaxpr_gan.models import stargan
from jaxpr_gan.nn import attention


def _generator(variant: str = '', **overrides) -> stargan.Generator:
  """SARGAN's generator: the preset of StarGAN's that configs/sargan.py declares."""
  config = sargan_config.get_config(variant)
  config.generator.update(overrides)
  return registry.build(config, 7).generator


def test_sargan_parameter_counts_match_official_code():
  # arbishakram/SARGAN with c_dim=7 at 128 px: G 3,203,394 parameters of which 189,249 belong to
  # an attention module its forward pass never uses (left out here); D 44,778,432.
  x = jnp.zeros((1, 128, 128, 3))
  assert count_params(_generator(), x, jnp.zeros((1, 7))) == 3_014_145
  assert count_params(stargan.Discriminator(image_size=128, num_classes=7), x) == 44_778_432


def test_sarb_block_parameter_count():
  # Feature unit 2 x (256*256*9 + 512); hourglass 2 x (256*64*9 + 128) + 5 x (64*64*9 + 128)
  # + the 1-channel head 64*9 + 1.
  assert (
    count_params(attention.SARB(256), jnp.zeros((1, 32, 32, 256)))
    == 2 * (256 * 256 * 9 + 512) + 2 * (256 * 64 * 9 + 128) + 5 * (64 * 64 * 9 + 128) + 64 * 9 + 1
  )


@pytest.mark.parametrize('size', [16, 12])  # 12: odd sizes inside the hourglass (3 -> 2 -> 1)
def test_output_shape_and_image_residual(size):
  g = _generator(conv_dim=4)
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, size, size, 3), minval=-1.0, maxval=1.0)
  c = jax.nn.one_hot(jnp.array([0, 3]), 5)
  params = g.init(jax.random.PRNGKey(0), x, c)['params']
  y = g.apply({'params': params}, x, c)
  assert y.shape == x.shape
  assert bool(jnp.all(jnp.isfinite(y)))
  # A zero last convolution makes tanh(...) = 0, so the output is exactly the input.
  zeroed = dict(params, to_rgb={'kernel': jnp.zeros_like(params['to_rgb']['kernel'])})
  np.testing.assert_array_equal(np.asarray(g.apply({'params': zeroed}, x, c)), np.asarray(x))
  # Without the image residual the output is tanh(...) only.
  g0 = _generator(conv_dim=4, image_residual=False)
  assert float(jnp.max(jnp.abs(g0.apply({'params': params}, x, c)))) <= 1.0
  np.testing.assert_array_equal(np.asarray(g0.apply({'params': zeroed}, x, c)), 0.0)


def test_sarb_attention_map_in_unit_interval():
  sarb = attention.SARB(8, mid_features=4)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 6, 8))
  params = sarb.init(jax.random.PRNGKey(1), x)
  _, state = sarb.apply(params, x, capture_intermediates=True)
  alpha = state['intermediates']['attention']['__call__'][0]
  assert alpha.shape == (2, 6, 6, 1)
  assert bool(jnp.all((alpha > 0) & (alpha < 1)))
  # ... and it is the block's declared attention mask (edit --mask, masks.png).
  _, masks = sarb.apply(params, x, mutable=[attention.MASKS])
  np.testing.assert_array_equal(np.asarray(masks[attention.MASKS]['mask'][0]), np.asarray(alpha))


@pytest.mark.parametrize(
  'variant',
  [
    '',
    'quick',
    'tiny',
    'code_lambda',
    'vanilla_block',
    'six_sarb',
    'no_image_residual',
    'tiny+vanilla_block',
    'tiny+six_sarb',
    'tiny+no_image_residual',
  ],
)
def test_every_variant_builds(variant):
  config = sargan_config.get_config(variant)
  assert config.model == 'sargan'
  objective = registry.build(config, config.data.num_classes)
  # Shapes at the tiny size, whatever the variant's own size (D sized accordingly).
  config.data.image_size = 16
  config.discriminator.repeat_num = 4
  objective = registry.build(config, config.data.num_classes)
  images = jnp.zeros((2, 16, 16, 3), jnp.uint8)
  params = jax.eval_shape(objective.init, jax.random.PRNGKey(0), images)
  g_out = jax.eval_shape(
    objective.translate, params['g'], jnp.zeros((2, 16, 16, 3)), jnp.array([0, 1])
  )
  src, cls = jax.eval_shape(
    objective.discriminator.apply, {'params': params['d']}, jnp.zeros((2, 16, 16, 3))
  )
  assert g_out.shape == (2, 16, 16, 3)
  assert src.shape == (2, 1, 1, 1) and cls.shape == (2, config.data.num_classes)
  blocks = [k for k in params['g'] if k.startswith(('SARB', 'ResidualBlock'))]
  assert len(blocks) == config.generator.num_blocks
  assert all(
    k.startswith('SARB' if config.generator.block == 'sarb' else 'ResidualBlock') for k in blocks
  )


def test_paper_settings():
  c = sargan_config.get_config()
  assert (c.data.num_classes, c.batch_size, c.n_critic, c.data.image_size) == (7, 8, 5, 128)
  assert (c.optim.g_lr, c.optim.d_lr, c.optim.b1, c.optim.b2) == (1e-4, 1e-4, 0.5, 0.999)
  assert (c.loss.lambda_cls, c.loss.lambda_rec) == (1.0, 10.0)
  assert sargan_config.get_config('code_lambda').loss.lambda_rec == 1.0
  with pytest.raises(ValueError):
    sargan_config.get_config('quick+nonsense')
