"""Building blocks shared by the networks: PyTorch-equivalent convolutions, norms, residual blocks.

Padding is explicit so that every layer has the output size of its PyTorch original.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any


def conv(features: int, kernel: int, stride: int = 1, padding: int = 0, use_bias: bool = True,
         dtype: Dtype = jnp.float32, name: str | None = None) -> nn.Conv:
  """`torch.nn.Conv2d(in, features, kernel, stride, padding, bias=use_bias)` in NHWC."""
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((padding, padding), (padding, padding)), use_bias=use_bias,
                 dtype=dtype, param_dtype=jnp.float32, name=name)


def conv_transpose(features: int, kernel: int, stride: int, padding: int, use_bias: bool = True,
                   dtype: Dtype = jnp.float32, name: str | None = None) -> nn.ConvTranspose:
  """`torch.nn.ConvTranspose2d(in, features, kernel, stride, padding)`: output = (H - 1) * s - 2p + k."""
  pad = kernel - 1 - padding
  return nn.ConvTranspose(features, (kernel, kernel), strides=(stride, stride),
                          padding=((pad, pad), (pad, pad)), use_bias=use_bias,
                          transpose_kernel=True, dtype=dtype, param_dtype=jnp.float32, name=name)


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
