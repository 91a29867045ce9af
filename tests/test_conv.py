"""The two convolution paths, XLA's own and the CPU fast path (nn/cpu_conv.py), compute the same
sums for every layer kind, to the gradient penalty's second order, with the same parameters."""

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpr_gan.nn import conv
from jaxpr_gan.nn import cpu_conv
from jaxpr_gan.nn import layers

DN = ('NHWC', 'HWIO', 'NHWC')


def _paths(fn):
  """fn traced with the CPU fast path, and with XLA's convolutions."""
  return conv.traced_with(fn, 'cpu_fast'), conv.traced_with(fn, 'xla')


def _penalty(conv_fn, x, w):
  """A gradient penalty: the squared input gradient, differentiated again below."""
  g = jax.grad(
    lambda x: jnp.sum(
      jnp.tanh(conv_fn(x, w)) * jnp.arange(1.0, 1.0 + x.shape[0])[:, None, None, None]
    )
  )(x)
  return jnp.sum(g**2)


# Stride 2 and 4: the input gradient as a transposed convolution; stride 1 with out < 8: kernel
# gradient by output taps; out <= 8 < in: overlap-added forward (and, with in and out swapped,
# input gradient); padding >= k: XLA's input gradient.
@pytest.mark.parametrize(
  'k,s,p,size,inp,out',
  [
    (4, 2, 1, 16, 3, 4),
    (4, 2, 1, 9, 3, 32),
    (4, 2, 1, 20, 3, 4),
    (3, 2, 1, 8, 3, 4),
    (3, 2, 1, 7, 3, 32),
    (4, 4, 0, 12, 3, 4),
    (7, 2, 3, 10, 3, 4),
    (3, 1, 1, 8, 3, 32),
    (7, 1, 3, 9, 3, 4),
    (7, 1, 3, 9, 12, 3),
    (7, 1, 3, 8, 4, 12),
    (2, 1, 0, 2, 16, 5),
    (1, 1, 1, 5, 3, 12),
  ],
)
def test_conv2d_paths_equal_in_values_gradients_and_second_order(k, s, p, size, inp, out):
  rng = np.random.default_rng(k * 100 + size)
  x = jnp.asarray(rng.normal(size=(2, size, size, inp)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, inp, out)), jnp.float32)
  ours, theirs = _paths(lambda x, w: conv.conv2d(x, w, s, p))
  np.testing.assert_allclose(ours(x, w), theirs(x, w), rtol=1e-5, atol=1e-5)
  loss = lambda conv: lambda x, w: jnp.sum(jnp.sin(conv(x, w)))
  for a, b in zip(jax.grad(loss(ours), (0, 1))(x, w), jax.grad(loss(theirs), (0, 1))(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  second = [jax.grad(lambda w, c=conv: _penalty(c, x, w))(w) for conv in (ours, theirs)]
  np.testing.assert_allclose(second[0], second[1], rtol=1e-4, atol=1e-3 * np.abs(second[1]).max())


@pytest.mark.parametrize(
  'k,s,lo,hi,size,inp,out',
  [
    (4, 2, 2, 2, 8, 3, 5),
    (4, 2, 2, 2, 9, 3, 5),
    (3, 2, 1, 2, 7, 3, 5),
    (4, 2, 2, 2, 5, 3, 5),
    (4, 2, 1, 5, 4, 3, 5),
    (4, 2, 2, 2, 9, 12, 3),
    (3, 2, 1, 2, 9, 12, 3),
    (3, 2, 1, 1, 6, 3, 5),
    (3, 1, 1, 1, 6, 3, 5),
  ],
)  # the last two: lax's own form
def test_transposed_conv_paths_equal_in_values_gradients_and_second_order(
  k, s, lo, hi, size, inp, out
):
  """<= 8 x 8 maps: overlap-added product; larger: sub-pixel phases; else lax.conv_transpose."""
  rng = np.random.default_rng(size)
  x = jnp.asarray(rng.normal(size=(2, size, size, inp)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, out, inp)), jnp.float32)
  ours, ref = _paths(lambda x, w: conv.transposed_conv(x, w, s, (lo, hi)))
  plain = lax.conv_transpose(
    x, w, (s, s), ((lo, hi), (lo, hi)), dimension_numbers=DN, transpose_kernel=True
  )
  np.testing.assert_array_equal(ref(x, w), plain)  # the XLA path is lax's own
  np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
  grads = [jax.grad(lambda x, w, f=f: jnp.sum(jnp.sin(f(x, w))), (0, 1))(x, w) for f in (ours, ref)]
  for a, b in zip(*grads):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  second = [jax.grad(lambda w, f=f: _penalty(f, x, w))(w) for f in (ours, ref)]
  np.testing.assert_allclose(second[0], second[1], rtol=1e-4, atol=1e-3 * np.abs(second[1]).max())


def test_conv_modules_keep_flax_parameter_names_shapes_and_initial_values():
  x = jnp.zeros((1, 8, 8, 3))
  pairs = [
    (layers.conv(6, 4, 2, 1), nn.Conv(6, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))),
    (
      layers.conv_transpose(6, 4, 2, 1),
      nn.ConvTranspose(6, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)), transpose_kernel=True),
    ),
  ]
  for ours, flax_module in pairs:
    a = ours.init(jax.random.PRNGKey(0), x)['params']
    b = flax_module.init(jax.random.PRNGKey(0), x)['params']
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_array_equal(u, v)
    np.testing.assert_allclose(
      ours.apply({'params': a}, x + 1.0),
      flax_module.apply({'params': b}, x + 1.0),
      rtol=1e-5,
      atol=1e-5,
    )


def _highest(pads):
  return lambda x, w: lax.conv_general_dilated(
    x, w, (1, 1), pads, dimension_numbers=DN, precision=lax.Precision.HIGHEST
  )


def _close(a, b, rel):
  """Equal to within rel of b's largest magnitude (Winograd's error scales with the outputs)."""
  np.testing.assert_allclose(a, b, rtol=0, atol=rel * float(np.abs(b).max()))


# Output sizes that are and are not multiples of 4, padding 0 to 2 and asymmetric.
@pytest.mark.parametrize(
  'size,pads',
  [
    (8, ((1, 1), (1, 1))),
    (9, ((1, 1), (1, 1))),
    (7, ((0, 2), (2, 0))),
    (6, ((0, 0), (0, 0))),
    (5, ((2, 2), (1, 1))),
  ],
)
def test_winograd_conv_equals_xla_to_second_order(size, pads):
  rng = np.random.default_rng(size)
  x = jnp.asarray(rng.normal(size=(2, size, size + 1, 6)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 6, 5)), jnp.float32)
  ours, theirs = (lambda x, w: cpu_conv._winograd_conv(x, w, pads)), _highest(pads)
  _close(ours(x, w), theirs(x, w), 1e-5)
  loss = lambda conv: lambda x, w: jnp.sum(jnp.sin(conv(x, w)))
  for a, b in zip(jax.grad(loss(ours), (0, 1))(x, w), jax.grad(loss(theirs), (0, 1))(x, w)):
    _close(a, b, 1e-5)
  second = [jax.grad(lambda w, c=conv: _penalty(c, x, w))(w) for conv in (ours, theirs)]
  _close(second[0], second[1], 1e-4)


def test_conv2d_takes_winograd_only_where_it_was_measured_faster():
  spec = lambda *shape, dtype=jnp.float32: jax.ShapeDtypeStruct(shape, dtype)
  one = ((1, 1), (1, 1))
  applies = lambda x, w, stride=1: cpu_conv._winograd_applies(x, w, stride, one)
  assert applies(spec(16, 32, 32, 256), spec(3, 3, 256, 256))  # StarGAN's residual blocks
  assert not applies(spec(16, 32, 32, 128), spec(3, 3, 128, 256))
  assert not applies(spec(16, 8, 8, 256), spec(3, 3, 256, 256))  # 64 tiles
  assert not applies(
    spec(16, 32, 32, 256, dtype=jnp.bfloat16), spec(3, 3, 256, 256, dtype=jnp.bfloat16)
  )
  assert not applies(spec(16, 32, 32, 256), spec(3, 3, 256, 256), stride=2)
  assert not applies(spec(16, 32, 32, 256), spec(4, 4, 256, 256))
  # A symbolic batch (an export for any batch size) keeps the direct convolution.
  b = jax.export.symbolic_shape('b')[0]
  assert not applies(spec(b, 32, 32, 256), spec(3, 3, 256, 256))
  # Through conv2d at the smallest size that takes it: 4 x 8 x 8 tiles; only on the fast path.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(4, 32, 32, 256)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 256, 256)) / 48, jnp.float32)
  fast, xla = _paths(lambda x, w: conv.conv2d(x, w, 1, 1))
  jaxpr = str(jax.make_jaxpr(fast)(x, w))
  assert 'conv_general_dilated' not in jaxpr and 'dot_general' in jaxpr
  assert 'dot_general' not in str(jax.make_jaxpr(xla)(x, w))
  _close(jax.jit(fast)(x, w), _highest(one)(x, w), 5e-5)


def test_auto_takes_the_fast_path_for_the_cpu_only():
  assert conv.resolve('auto', ['cpu']) == 'cpu_fast'
  assert conv.resolve('auto', ['cuda']) == conv.resolve('auto', ['tpu']) == 'xla'
  assert conv.resolve('auto', ['cpu', 'cuda', 'tpu']) == 'per_platform'
  assert conv.resolve('xla', ['cpu']) == 'xla' and conv.resolve('cpu_fast', ['cpu']) == 'cpu_fast'
  with pytest.raises(ValueError, match='unknown conv_impl'):
    conv.resolve('fast', ['cpu'])
  # A conv to RGB (64 -> 3): the fast path's overlap-added matrix product, or lax's convolution.
  x, w = jnp.ones((1, 8, 8, 64)), jnp.ones((7, 7, 64, 3))
  text = lambda fn: str(jax.make_jaxpr(fn)(x, w))
  rgb = lambda x, w: conv.conv2d(x, w, 1, 3)
  fast = text(rgb)  # no choice made: 'auto' for this CPU backend
  assert 'custom_vjp_call' in fast and 'dot_general' in fast
  assert 'conv_general_dilated' not in fast
  xla = text(conv.traced_with(rgb, 'xla'))
  assert 'conv_general_dilated' in xla and 'custom_vjp_call' not in xla
  # Lowered for several platforms, the program carries both and picks per platform.
  per_platform = conv.traced_with(rgb, 'auto', ['cpu', 'cuda'])
  assert 'platform_index' in text(per_platform)
  np.testing.assert_allclose(jax.jit(per_platform)(x, w), jax.jit(rgb)(x, w), rtol=1e-6)


@pytest.mark.parametrize(
  'make,size',
  [
    (lambda: layers.conv(8, 4, 2, 1), 16),  # down-sampling (StarGAN, both Ds)
    (lambda: layers.conv(8, 3, 1, 1, use_bias=False), 8),  # residual blocks
    (lambda: layers.conv(3, 7, 1, 3, use_bias=False), 8),  # to RGB
    (lambda: layers.conv(1, 4, 4, 0), 16),  # the basic CycleGAN D's head
    (lambda: layers.conv_transpose(4, 4, 2, 1, use_bias=False), 4),  # StarGAN's up-sampling
    (lambda: layers.conv_transpose(4, 4, 2, 1), 16),  # the U-Net's, on a larger map
    (lambda: layers.ConvTranspose(4, 3, 2, (1, 2)), 6),  # CycleGAN's, output_padding 1
  ],
)
def test_layer_modules_equal_on_both_paths_with_one_set_of_parameters(make, size):
  """Each layer kind of the networks: the same parameters (so checkpoints move between the
  paths), values, gradients for the input and the parameters, and the second order of a
  gradient penalty on the input."""
  module = make()
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 6))
  params = module.init(jax.random.PRNGKey(1), x)['params']
  fast, xla = _paths(lambda p, x: module.apply({'params': p}, x))
  np.testing.assert_allclose(fast(params, x), xla(params, x), rtol=1e-5, atol=1e-5)
  loss = lambda f: lambda p, x: jnp.sum(jnp.sin(f(p, x)))
  for a, b in zip(
    jax.tree.leaves(jax.grad(loss(fast), (0, 1))(params, x)),
    jax.tree.leaves(jax.grad(loss(xla), (0, 1))(params, x)),
  ):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

  def penalty(f, p):
    g = jax.grad(lambda x: jnp.sum(jnp.tanh(f(p, x))))(x)
    return jnp.sum(g**2)

  for a, b in zip(
    jax.tree.leaves(jax.grad(lambda p: penalty(fast, p))(params)),
    jax.tree.leaves(jax.grad(lambda p: penalty(xla, p))(params)),
  ):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3 * float(np.abs(b).max()))
