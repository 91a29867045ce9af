"""Layers shared by the networks: PyTorch-equivalent convolutions, norms, residual blocks.

Padding is explicit so that every layer has the output size of its PyTorch original. The
convolutions run through `jaxpr_gan.nn.conv`, which picks XLA's own or the CPU fast path; the
parameters (names, shapes, initialisers: flax.linen.Conv's) are the same either way.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxpr_gan.nn import conv as conv_lib

Dtype = Any


def reflect_pad(x: jnp.ndarray, pad: int) -> jnp.ndarray:
  """`torch.nn.ReflectionPad2d(pad)` on NHWC (the edge pixel is not repeated)."""
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')


def upsample2(x: jnp.ndarray) -> jnp.ndarray:
  """`F.interpolate(x, scale_factor=2, mode='nearest')` on NHWC."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def upsample_nearest(x: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
  """`torch.nn.functional.interpolate(x, (height, width), mode='nearest')` on NHWC."""
  _, h, w, _ = x.shape
  rows = (jnp.arange(height) * h) // height
  cols = (jnp.arange(width) * w) // width
  return x[:, rows][:, :, cols]


def _add_bias(module: nn.Module, y: jnp.ndarray) -> jnp.ndarray:
  """y plus the module's bias ('bias', (features,), float32, zeros) when it has one."""
  if not module.use_bias:
    return y
  bias = module.param('bias', nn.initializers.zeros_init(), (module.features,), jnp.float32)
  return y + bias.astype(module.dtype)


class Conv(nn.Module):
  """`torch.nn.Conv2d` in NHWC with symmetric padding; parameters as `flax.linen.Conv`'s
  (kernel (k, k, in, features), bias; same names and initialisers), computed by `conv.conv2d`."""

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    k = self.kernel_size
    kernel = self.param(
      'kernel', nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features), jnp.float32
    )
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    return _add_bias(self, conv_lib.conv2d(x, kernel, self.stride, self.padding))


def conv(
  features: int,
  kernel: int,
  stride: int = 1,
  padding: int = 0,
  use_bias: bool = True,
  dtype: Dtype = jnp.float32,
  name: str | None = None,
) -> Conv:
  """`torch.nn.Conv2d(in, features, kernel, stride, padding, bias=use_bias)` in NHWC."""
  return Conv(features, kernel, stride, padding, use_bias=use_bias, dtype=dtype, name=name)


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
    kernel = self.param(
      'kernel', nn.initializers.lecun_normal(), (k, k, self.features, x.shape[-1]), jnp.float32
    )
    y = conv_lib.transposed_conv(
      x.astype(self.dtype), kernel.astype(self.dtype), self.stride, tuple(self.padding)
    )
    return _add_bias(self, y)


def conv_transpose(
  features: int,
  kernel: int,
  stride: int,
  padding: int,
  use_bias: bool = True,
  dtype: Dtype = jnp.float32,
  name: str | None = None,
) -> ConvTranspose:
  """`torch.nn.ConvTranspose2d(in, features, kernel, stride, padding)`: output
  (H - 1) * s - 2p + k."""
  pad = kernel - 1 - padding
  return ConvTranspose(
    features, kernel, stride, (pad, pad), use_bias=use_bias, dtype=dtype, name=name
  )


def instance_norm(
  affine: bool = True, dtype: Dtype = jnp.float32, name: str | None = None
) -> nn.InstanceNorm:
  """Per-sample, per-channel normalisation (statistics of the instance, in training and test
  alike)."""
  return nn.InstanceNorm(
    epsilon=1e-5, use_scale=affine, use_bias=affine, dtype=dtype, param_dtype=jnp.float32, name=name
  )


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
    h = nn.Dense(2 * self.features, dtype=self.dtype, param_dtype=jnp.float32, name='fc')(
      code.astype(self.dtype)
    )
    gamma, beta = h[:, None, None, : self.features], h[:, None, None, self.features :]
    return (1 + gamma) * instance_norm(affine=False, dtype=self.dtype)(x) + beta
