"""Building blocks shared by the networks: PyTorch-equivalent convolutions, norms, residual blocks.

Padding is explicit so that every layer has the output size of its PyTorch original.
"""
import functools
from typing import Any

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

Dtype = Any


_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _conv(x, kernel, stride: int, padding: int):
  pad = ((padding, padding), (padding, padding))
  return lax.conv_general_dilated(x, kernel, (stride, stride), pad, dimension_numbers=_NHWC)


def _kernel_grad_by_taps(x, g, k: int, stride: int, padding: int):
  """d(conv)/d(kernel) as one (in x N) @ (N x out) product per kernel tap."""
  xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  ho, wo = g.shape[1:3]
  gm = g.reshape(-1, g.shape[-1])
  taps = [[lax.slice(xp, (0, ky, kx, 0), (xp.shape[0], ky + (ho - 1) * stride + 1,
                                          kx + (wo - 1) * stride + 1, xp.shape[3]),
                     (1, stride, stride, 1)).reshape(-1, x.shape[-1]).T @ gm
           for kx in range(k)] for ky in range(k)]
  return jnp.stack([jnp.stack(row) for row in taps])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: jnp.ndarray, kernel: jnp.ndarray, stride: int, padding: int) -> jnp.ndarray:
  """A convolution (NHWC, HWIO, square maps) with gradients that XLA:CPU runs fast.

  XLA derives the input gradient of a strided convolution as a convolution over the output
  gradient dilated with zeros, and the kernel gradient as a convolution that contracts the
  batch; XLA:CPU runs the first up to 20 times slower than needed (5 s against 0.26 s for the
  last layer of StarGAN's discriminator at 128 px) and the second 2 to 3 times for stride-1
  convolutions. Here the input gradient of a strided convolution is the sub-pixel
  `transposed_conv`, and the kernel gradient of a stride-1 one with 32 output channels or more
  (where it was measured to pay) one matrix product per kernel tap. The same sums; the backward
  pass is itself differentiable (the gradient penalty's second order).
  """
  return _conv(x, kernel, stride, padding)


def _conv2d_fwd(x, kernel, stride, padding):
  return _conv(x, kernel, stride, padding), (x, kernel)


def _conv2d_bwd(stride, padding, residuals, g):
  x, kernel = residuals
  k, size = kernel.shape[0], x.shape[1]
  if stride > 1:
    before = k - 1 - padding
    after = size + k - 2 - (g.shape[1] - 1) * stride - before  # rows no window reached: 0
    dx = transposed_conv(g.astype(kernel.dtype), kernel, stride, (before, after))
  else:
    dx = jax.vjp(lambda x: _conv(x, kernel, stride, padding), x)[1](g)[0]
  if stride == 1 and kernel.shape[-1] >= 32:
    dk = _kernel_grad_by_taps(x, g.astype(x.dtype), k, stride, padding).astype(kernel.dtype)
  else:
    dk = jax.vjp(lambda w: _conv(x, w, stride, padding), kernel)[1](g)[0]
  return dx.astype(x.dtype), dk


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


class Conv(nn.Module):
  """`torch.nn.Conv2d` in NHWC with symmetric padding; parameters as `flax.linen.Conv`'s
  (kernel (k, k, in, features), bias; same names and initialisers), computed by `conv2d`."""
  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    k = self.kernel_size
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if x.shape[1] == x.shape[2]:
      y = conv2d(x, kernel, self.stride, self.padding)
    else:
      y = _conv(x, kernel, self.stride, self.padding)
    if self.use_bias:
      bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
      y = y + bias.astype(self.dtype)
    return y


def conv(features: int, kernel: int, stride: int = 1, padding: int = 0, use_bias: bool = True,
         dtype: Dtype = jnp.float32, name: str | None = None) -> Conv:
  """`torch.nn.Conv2d(in, features, kernel, stride, padding, bias=use_bias)` in NHWC."""
  return Conv(features, kernel, stride, padding, use_bias=use_bias, dtype=dtype, name=name)


def transposed_conv(x: jnp.ndarray, kernel: jnp.ndarray, stride: int,
                    padding: tuple[int, int]) -> jnp.ndarray:
  """`lax.conv_transpose(x, kernel, (s, s), (padding, padding), transpose_kernel=True)`, NHWC.

  Computed as stride**2 ordinary convolutions on x, one per output phase (sub-pixel), whose
  outputs are interleaved, rather than as one convolution over x dilated with zeros: the same
  sums (equal to float rounding), but XLA:CPU runs the dilated form's gradients about 5 to 15
  times slower at StarGAN's sizes (docs/benchmarks.md). Falls back to the dilated form when
  the output size is not a multiple of the stride.
  """
  k, (lo, hi) = kernel.shape[0], padding
  height, width = x.shape[1:3]
  sizes = [(n - 1) * stride + 1 + lo + hi - k + 1 for n in (height, width)]
  dn = ('NHWC', 'HWIO', 'NHWC')
  if stride == 1 or any(n % stride for n in sizes):
    return lax.conv_transpose(x, kernel, (stride, stride), ((lo, hi), (lo, hi)),
                              dimension_numbers=dn, transpose_kernel=True)
  # Over the dilated input the conv kernel is the flipped one, in and out channels swapped;
  # output phase p meets data only at the taps t = t0, t0 + s, ... with t0 = (lo - p) mod s.
  flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
  rows = []
  for py in range(stride):
    cols = []
    for px in range(stride):
      taps, pads = [], []
      for phase, size, total in ((py, height, sizes[0]), (px, width, sizes[1])):
        t0 = (lo - phase) % stride
        before = (lo - phase - t0) // stride  # zero rows of x read before its first row
        length = len(range(t0, k, stride))
        taps.append(t0)
        pads.append((before, total // stride - size - before + length - 1))
      sub = flipped[taps[0]::stride, taps[1]::stride]
      cols.append(lax.conv_general_dilated(x, sub, (1, 1), pads, dimension_numbers=dn))
    rows.append(jnp.stack(cols, axis=3))  # (B, n_h, n_w, phase_x, C)
  out = jnp.stack(rows, axis=2)  # (B, n_h, phase_y, n_w, phase_x, C)
  return out.reshape(out.shape[0], sizes[0], sizes[1], out.shape[-1])


class ConvTranspose(nn.Module):
  """`torch.nn.ConvTranspose2d` in NHWC, with explicit (before, after) padding of the dilated
  input; parameters as `flax.linen.ConvTranspose(transpose_kernel=True)`'s: kernel
  (k, k, features, in), bias (features,), same names and initialisers."""
  features: int
  kernel_size: int
  stride: int
  padding: tuple[int, int]
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    k = self.kernel_size
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, self.features, x.shape[-1]), jnp.float32)
    y = transposed_conv(x.astype(self.dtype), kernel.astype(self.dtype), self.stride,
                        tuple(self.padding))
    if self.use_bias:
      bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
      y = y + bias.astype(self.dtype)
    return y


def conv_transpose(features: int, kernel: int, stride: int, padding: int, use_bias: bool = True,
                   dtype: Dtype = jnp.float32, name: str | None = None) -> ConvTranspose:
  """`torch.nn.ConvTranspose2d(in, features, kernel, stride, padding)`: output = (H - 1) * s - 2p + k."""
  pad = kernel - 1 - padding
  return ConvTranspose(features, kernel, stride, (pad, pad), use_bias=use_bias, dtype=dtype,
                       name=name)


def instance_norm(affine: bool = True, dtype: Dtype = jnp.float32,
                  name: str | None = None) -> nn.InstanceNorm:
  """Per-sample, per-channel normalisation (statistics of the instance, in training and test alike)."""
  return nn.InstanceNorm(epsilon=1e-5, use_scale=affine, use_bias=affine, dtype=dtype,
                         param_dtype=jnp.float32, name=name)


class ResidualBlock(nn.Module):
  """x + IN(conv3x3(relu(IN(conv3x3(x))))) with bias-free convolutions (StarGAN's ResidualBlock)."""
  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    h = conv(self.features, 3, 1, 1, use_bias=False, dtype=self.dtype)(x)
    h = nn.relu(instance_norm(dtype=self.dtype)(h))
    h = conv(self.features, 3, 1, 1, use_bias=False, dtype=self.dtype)(h)
    h = instance_norm(dtype=self.dtype)(h)
    return x + h


def tile_condition(x: jnp.ndarray, c: jnp.ndarray) -> jnp.ndarray:
  """Concatenates a per-sample vector c (B, C) to x (B, H, W, K) as C constant feature maps."""
  b, h, w, _ = x.shape
  c = jnp.broadcast_to(c[:, None, None, :].astype(x.dtype), (b, h, w, c.shape[-1]))
  return jnp.concatenate([x, c], axis=-1)


class AdaIN(nn.Module):
  """Adaptive InstanceNorm: (1 + gamma) * IN(x) + beta, with (gamma, beta) = Dense(code).

  The normalisation has no parameters of its own; the code sets each channel's scale and shift
  (StarGAN v2's AdaIN, used by 2CET-GAN and DCAM-GAN). The `1 +` makes a zero Dense the identity
  on IN(x). The Dense ('fc') returns gamma in its first `features` outputs and beta in the rest,
  as `torch.chunk` splits the official `fc` output.
  """
  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, code: jnp.ndarray) -> jnp.ndarray:
    if x.shape[-1] != self.features:
      raise ValueError(f'AdaIN({self.features}) got {x.shape[-1]} channels.')
    h = nn.Dense(2 * self.features, dtype=self.dtype, param_dtype=jnp.float32,
                 name='fc')(code.astype(self.dtype))
    gamma, beta = h[:, None, None, :self.features], h[:, None, None, self.features:]
    return (1 + gamma) * instance_norm(affine=False, dtype=self.dtype)(x) + beta
