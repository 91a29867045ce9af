"""Attention blocks.

SARB (Akram & Khan, SARGAN): spatial-attention residual block, layer for layer as the official
code (arbishakram/SARGAN, generator.py + utils.py):

  f      = IN(conv3x3(relu(IN(conv3x3(phi_0)))))          feature unit, bias-free convs
  alpha  = sigmoid(conv3x3(hourglass(f)))                 attention unit, one channel
  phi_1  = phi_0 + alpha * f                              (eq. 1)

Every 3x3 convolution of the block follows the official `ConvLayer`: reflection padding of 1,
then the convolution (with a bias only when no norm follows), InstanceNorm with affine
parameters, ReLU. The hourglass downsamples with stride-2 convolutions and upsamples by nearest
neighbour x2 followed by a stride-1 convolution (not a transposed convolution).
"""
import flax.linen as nn
import jax.numpy as jnp

from jaxpr_gan import layers


def reflect_pad(x: jnp.ndarray, pad: int) -> jnp.ndarray:
  """`torch.nn.ReflectionPad2d(pad)` on NHWC."""
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')


def upsample_nearest(x: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
  """`torch.nn.functional.interpolate(x, (height, width), mode='nearest')` on NHWC."""
  _, h, w, _ = x.shape
  rows = (jnp.arange(height) * h) // height
  cols = (jnp.arange(width) * w) // width
  return x[:, rows][:, :, cols]


class ConvUnit(nn.Module):
  """The official `ConvLayer`: [nearest x2] -> reflection pad -> conv -> [IN] -> [ReLU]."""
  features: int
  kernel: int = 3
  scale: str = 'none'  # 'none' | 'down' (stride 2) | 'up' (nearest x2 first)
  norm: bool = True
  relu: bool = True
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if self.scale == 'up':
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    stride = 2 if self.scale == 'down' else 1
    h = reflect_pad(x, self.kernel // 2)
    h = layers.conv(self.features, self.kernel, stride, 0, use_bias=not self.norm,
                    dtype=self.dtype)(h)
    if self.norm:
      h = layers.instance_norm(dtype=self.dtype)(h)
    if self.relu:
      h = nn.relu(h)
    return h


class Hourglass(nn.Module):
  """The official `SEDN` up to the sigmoid: a symmetric encoder-decoder with a skip per level.

  Level l (from `depth` down to 1): skip = conv(x); low = conv_stride2(x); inner = level l-1 of
  low (or one more conv at level 1); return skip + conv(nearest_x2(inner)). Then a bias
  1-channel conv and a sigmoid give the attention map in (0, 1).
  """
  depth: int = 2
  mid_features: int = 64
  out_features: int = 1
  dtype: layers.Dtype = jnp.float32

  def _level(self, level: int, x: jnp.ndarray) -> jnp.ndarray:
    kw = dict(dtype=self.dtype)
    up1 = ConvUnit(self.mid_features, name=f'b1_{level}', **kw)(x)
    low1 = ConvUnit(self.mid_features, scale='down', name=f'b2_{level}', **kw)(x)
    if level > 1:
      low2 = self._level(level - 1, low1)
    else:
      low2 = ConvUnit(self.mid_features, name=f'b2_plus_{level}', **kw)(low1)
    up2 = ConvUnit(self.mid_features, scale='up', name=f'b3_{level}', **kw)(low2)
    if up2.shape[1:3] != up1.shape[1:3]:  # odd sizes: x2 overshoots by one
      up2 = upsample_nearest(up2, up1.shape[1], up1.shape[2])
    return up1 + up2

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    h = self._level(self.depth, x)
    h = ConvUnit(self.out_features, norm=False, relu=False, dtype=self.dtype, name='out')(h)
    return nn.sigmoid(h)


class SARB(nn.Module):
  """Spatial-attention residual block: x + alpha * f (eq. 1), alpha computed from f."""
  features: int
  hg_depth: int = 2
  mid_features: int = 64
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    f = ConvUnit(self.features, dtype=self.dtype, name='conv1')(x)
    f = ConvUnit(self.features, relu=False, dtype=self.dtype, name='conv2')(f)
    alpha = Hourglass(self.hg_depth, self.mid_features, 1, dtype=self.dtype, name='attention')(f)
    return x + alpha * f
