"""2CET-GAN networks: parameter counts against the official code, shapes, AdaIN, D heads."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpr_gan.models import count_params
from jaxpr_gan.models import twocet
from jaxpr_gan.nn import layers

SMALL = dict(dim_in=8, max_conv_dim=16)


@pytest.mark.parametrize(
  'size, g, e, d',
  [
    (128, 33_361_667, 20_748_192, 20_735_106),
    (64, 32_389_123, 20_273_952, 20_263_170),
  ],
)
def test_parameter_counts_match_official_code(size, g, e, d):
  # xiaohanghu/2CET-GAN Model.py with code_dim=32, num_domains=2, encoder_grey=True (so the
  # encoder's EncoderBlk has img_dim=1), default dim_in 2**14 // size and max_conv_dim 512:
  # Generator, Encoder(EncoderBlk) and Discriminator(EncoderBlk) parameter counts at that size.
  x = jnp.zeros((1, size, size, 3))
  group = jnp.zeros((1,), jnp.int32)
  assert count_params(twocet.Generator(image_size=size, code_dim=32), x, jnp.zeros((1, 32))) == g
  assert count_params(twocet.Encoder(image_size=size, code_dim=32), x) == e
  assert count_params(twocet.Discriminator(image_size=size), x, group) == d


def test_parameter_names_follow_official_layout():
  # 32 px: one downsampling block + 2 bottleneck blocks, mirrored in the decoder.
  x = jnp.zeros((1, 32, 32, 3))
  g = jax.eval_shape(
    twocet.Generator(image_size=32, code_dim=4, **SMALL).init,
    jax.random.PRNGKey(0),
    x,
    jnp.zeros((1, 4)),
  )['params']
  assert sorted(g) == [
    'decode_0',
    'decode_1',
    'decode_2',
    'encode_0',
    'encode_1',
    'encode_2',
    'from_rgb',
    'to_rgb',
  ]
  assert sorted(g['encode_0']) == ['conv1', 'conv1x1', 'conv2', 'norm1', 'norm2']
  assert sorted(g['decode_2']) == ['conv1', 'conv1x1', 'conv2', 'norm1', 'norm2']
  assert g['decode_2']['norm1']['fc']['kernel'].shape == (4, 2 * 16)  # AdaIN on 16 channels
  assert sorted(g['to_rgb']) == ['conv', 'norm']
  d = jax.eval_shape(
    twocet.Discriminator(image_size=32, **SMALL).init,
    jax.random.PRNGKey(0),
    x,
    jnp.zeros((1,), jnp.int32),
  )['params']
  assert sorted(d) == ['head', 'trunk']
  assert sorted(d['trunk']) == ['block_0', 'block_1', 'block_2', 'conv_out', 'from_rgb']
  assert d['head']['kernel'].shape == (1, 1, 16, 2)


def _out(module, *args):
  """The output's shape and dtype, traced only (the other tests run the networks)."""
  params = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)
  return jax.eval_shape(module.apply, params, *args)


@pytest.mark.parametrize('size', [16, 32])
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_output_shapes_and_dtypes(size, dtype):
  b, code_dim = 3, 5
  x = jnp.zeros((b, size, size, 3))
  code = jnp.zeros((b, code_dim))
  small = dict(SMALL, image_size=size, dtype=dtype)
  y = _out(twocet.Generator(code_dim=code_dim, **small), x, code)
  assert y.shape == x.shape and y.dtype == jnp.float32
  c = _out(twocet.Encoder(code_dim=code_dim, **small), x)
  assert c.shape == (b, code_dim) and c.dtype == jnp.float32
  d = twocet.Discriminator(**small)
  out = _out(d, x, jnp.array([0, 1, 1]))
  assert out.shape == (b,) and out.dtype == jnp.float32
  assert _out(d, x).shape == (b, 2)


def test_generator_runs_and_depends_on_the_code():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16, 3))
  code = jax.random.normal(jax.random.PRNGKey(1), (2, 4))
  g = twocet.Generator(image_size=16, code_dim=4, **SMALL)
  params = g.init(jax.random.PRNGKey(2), x, code)
  y = g.apply(params, x, code)
  assert bool(jnp.all(jnp.isfinite(y)))
  assert not np.allclose(g.apply(params, x, -code), y)


def test_adain_with_zero_dense_is_plain_instance_norm():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 5, 6)) * 3 + 1
  code = jax.random.normal(jax.random.PRNGKey(1), (2, 7))
  adain = layers.AdaIN(6)
  params = adain.init(jax.random.PRNGKey(2), x, code)
  zero = jax.tree.map(jnp.zeros_like, params)
  expected = layers.instance_norm(affine=False).apply({}, x)
  np.testing.assert_array_equal(adain.apply(zero, x, code), expected)
  # With the random Dense the code does change the output, per sample.
  assert not np.allclose(adain.apply(params, x, code), expected)
  with pytest.raises(ValueError, match='AdaIN\\(4\\) got 6 channels'):
    layers.AdaIN(4).init(jax.random.PRNGKey(0), x, code)


def test_grayscale_encoder_ignores_channel_order():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16, 3))
  permuted = x[..., jnp.array([2, 0, 1])]
  e = twocet.Encoder(image_size=16, code_dim=4, grayscale=True, **SMALL)
  params = e.init(jax.random.PRNGKey(1), x)
  assert params['params']['trunk']['from_rgb']['kernel'].shape[2] == 1  # one input channel
  np.testing.assert_allclose(e.apply(params, permuted), e.apply(params, x), atol=1e-6)
  colour = twocet.Encoder(image_size=16, code_dim=4, grayscale=False, **SMALL)
  cp = colour.init(jax.random.PRNGKey(1), x)
  assert not np.allclose(colour.apply(cp, permuted), colour.apply(cp, x), atol=1e-6)


def test_discriminator_picks_each_samples_head():
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 16, 16, 3))
  d = twocet.Discriminator(image_size=16, **SMALL)
  group = jnp.array([0, 1, 1, 0])
  params = d.init(jax.random.PRNGKey(1), x, group)
  heads = d.apply(params, x)
  assert not np.allclose(heads[:, 0], heads[:, 1])
  np.testing.assert_array_equal(d.apply(params, x, group), heads[jnp.arange(4), group])
  np.testing.assert_array_equal(d.apply(params, x, 1 - group), heads[jnp.arange(4), 1 - group])


@pytest.mark.parametrize('size', [48, 8, 100])
def test_rejects_sizes_that_are_not_powers_of_two_from_16(size):
  x = jnp.zeros((1, size, size, 3))
  with pytest.raises(ValueError, match=f'image_size {size} must be a power of two'):
    twocet.Generator(image_size=size, **SMALL).init(jax.random.PRNGKey(0), x, jnp.zeros((1, 4)))
  with pytest.raises(ValueError, match=f'image_size {size} must be a power of two'):
    twocet.Encoder(image_size=size, **SMALL).init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match=f'image_size {size} must be a power of two'):
    twocet.Discriminator(image_size=size, **SMALL).init(jax.random.PRNGKey(0), x)


def test_encoder_rejects_images_of_another_size():
  e = twocet.Encoder(image_size=32, **SMALL)
  with pytest.raises(ValueError, match='expected 32x32 images, got 16x16'):
    e.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
