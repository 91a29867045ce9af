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
