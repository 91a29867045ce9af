"""The fast convolutions compute what XLA's own (and PyTorch's) do, to every order of gradient."""
import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpr_gan import layers

DN = ('NHWC', 'HWIO', 'NHWC')


def _plain(x, w, s, p):
  return lax.conv_general_dilated(x, w, (s, s), ((p, p), (p, p)), dimension_numbers=DN)


def _penalty(conv, x, w):
  """A gradient penalty: the squared input gradient, differentiated again below."""
  g = jax.grad(lambda x: jnp.sum(jnp.tanh(conv(x, w)) * jnp.arange(1.0, 1.0 + x.shape[0])[
      :, None, None, None]))(x)
  return jnp.sum(g ** 2)


# Stride 1 with out < 8: kernel gradient by output taps; out <= 8 < in: overlap-added forward
# (and, with in and out swapped, input gradient); padding >= k: XLA's input gradient.
@pytest.mark.parametrize('k,s,p,size,inp,out', [
    (4, 2, 1, 16, 3, 4), (4, 2, 1, 9, 3, 32), (4, 2, 1, 20, 3, 4), (3, 2, 1, 8, 3, 4),
    (3, 2, 1, 7, 3, 32), (4, 4, 0, 12, 3, 4), (7, 2, 3, 10, 3, 4), (3, 1, 1, 8, 3, 32),
    (7, 1, 3, 9, 3, 4), (7, 1, 3, 9, 12, 3), (7, 1, 3, 8, 4, 12), (2, 1, 0, 2, 16, 5),
    (1, 1, 1, 5, 3, 12)])
def test_conv2d_values_and_gradients_equal_xla(k, s, p, size, inp, out):
  rng = np.random.default_rng(k * 100 + size)
  x = jnp.asarray(rng.normal(size=(2, size, size, inp)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, inp, out)), jnp.float32)
  ours = lambda x, w: layers.conv2d(x, w, s, p)
  theirs = lambda x, w: _plain(x, w, s, p)
  np.testing.assert_allclose(ours(x, w), theirs(x, w), rtol=1e-5, atol=1e-5)
  loss = lambda conv: lambda x, w: jnp.sum(jnp.sin(conv(x, w)))
  for a, b in zip(jax.grad(loss(ours), (0, 1))(x, w), jax.grad(loss(theirs), (0, 1))(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  second = [jax.grad(lambda w: _penalty(conv, x, w))(w) for conv in (ours, theirs)]
  np.testing.assert_allclose(second[0], second[1], rtol=1e-4, atol=1e-3 * np.abs(second[1]).max())


@pytest.mark.parametrize('k,s,lo,hi,size,inp,out', [
    (4, 2, 2, 2, 8, 3, 5), (4, 2, 2, 2, 9, 3, 5), (3, 2, 1, 2, 7, 3, 5), (4, 2, 2, 2, 5, 3, 5),
    (4, 2, 1, 5, 4, 3, 5), (4, 2, 2, 2, 9, 12, 3), (3, 2, 1, 2, 9, 12, 3),
    (3, 2, 1, 1, 6, 3, 5)])  # the last falls back to lax
def test_transposed_conv_equals_lax_conv_transpose(k, s, lo, hi, size, inp, out):
  rng = np.random.default_rng(size)
  x = jnp.asarray(rng.normal(size=(2, size, size, inp)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, out, inp)), jnp.float32)
  ref = lambda x, w: lax.conv_transpose(x, w, (s, s), ((lo, hi), (lo, hi)), dimension_numbers=DN,
                                        transpose_kernel=True)
  ours = lambda x, w: layers.transposed_conv(x, w, s, (lo, hi))
  np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
  grads = [jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), (0, 1))(x, w) for f in (ours, ref)]
  for a, b in zip(*grads):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_modules_keep_flax_parameter_names_shapes_and_initial_values():
  x = jnp.zeros((1, 8, 8, 3))
  pairs = [(layers.conv(6, 4, 2, 1),
            nn.Conv(6, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))),
           (layers.conv_transpose(6, 4, 2, 1),
            nn.ConvTranspose(6, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                             transpose_kernel=True))]
  for ours, flax_module in pairs:
    a = ours.init(jax.random.PRNGKey(0), x)['params']
    b = flax_module.init(jax.random.PRNGKey(0), x)['params']
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_array_equal(u, v)
    np.testing.assert_allclose(ours.apply({'params': a}, x + 1.0),
                               flax_module.apply({'params': b}, x + 1.0), rtol=1e-5, atol=1e-5)


def _highest(pads):
  return lambda x, w: lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=DN,
                                               precision=lax.Precision.HIGHEST)


def _close(a, b, rel):
  """Equal to within rel of b's largest magnitude (Winograd's error scales with the outputs)."""
  np.testing.assert_allclose(a, b, rtol=0, atol=rel * float(np.abs(b).max()))


# Output sizes that are and are not multiples of 4, padding 0 to 2 and asymmetric.
@pytest.mark.parametrize('size,pads', [
    (8, ((1, 1), (1, 1))), (9, ((1, 1), (1, 1))), (7, ((0, 2), (2, 0))), (6, ((0, 0), (0, 0))),
    (5, ((2, 2), (1, 1)))])
def test_winograd_conv_equals_xla_to_second_order(size, pads):
  rng = np.random.default_rng(size)
  x = jnp.asarray(rng.normal(size=(2, size, size + 1, 6)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 6, 5)), jnp.float32)
  ours, theirs = (lambda x, w: layers._winograd_conv(x, w, pads)), _highest(pads)
  _close(ours(x, w), theirs(x, w), 1e-5)
  loss = lambda conv: lambda x, w: jnp.sum(jnp.sin(conv(x, w)))
  for a, b in zip(jax.grad(loss(ours), (0, 1))(x, w), jax.grad(loss(theirs), (0, 1))(x, w)):
    _close(a, b, 1e-5)
  second = [jax.grad(lambda w: _penalty(conv, x, w))(w) for conv in (ours, theirs)]
  _close(second[0], second[1], 1e-4)


def test_conv2d_takes_winograd_only_where_it_was_measured_faster():
  spec = lambda *shape, dtype=jnp.float32: jax.ShapeDtypeStruct(shape, dtype)
  one = ((1, 1), (1, 1))
  applies = lambda x, w, stride=1: layers._winograd_applies(x, w, stride, one)
  assert applies(spec(16, 32, 32, 256), spec(3, 3, 256, 256))  # StarGAN's residual blocks
  assert not applies(spec(16, 32, 32, 128), spec(3, 3, 128, 256))
  assert not applies(spec(16, 8, 8, 256), spec(3, 3, 256, 256))  # 64 tiles
  assert not applies(spec(16, 32, 32, 256, dtype=jnp.bfloat16),
                     spec(3, 3, 256, 256, dtype=jnp.bfloat16))
  assert not applies(spec(16, 32, 32, 256), spec(3, 3, 256, 256), stride=2)
  assert not applies(spec(16, 32, 32, 256), spec(4, 4, 256, 256))
  # Through conv2d at the smallest size that takes it: 4 x 8 x 8 tiles.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(4, 32, 32, 256)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 256, 256)) / 48, jnp.float32)
  jaxpr = str(jax.make_jaxpr(lambda x, w: layers.conv2d(x, w, 1, 1))(x, w))
  assert 'conv_general_dilated' not in jaxpr and 'dot_general' in jaxpr
  _close(jax.jit(lambda x, w: layers.conv2d(x, w, 1, 1))(x, w), _highest(one)(x, w), 5e-5)
