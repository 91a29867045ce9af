"""Attention blocks: SARGAN's spatial-attention residual block, MMA-GAN's multi-scale mixed
attention residual module.

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

from jaxpr_gan.nn import layers

MASKS = 'attention_masks'  # the collection of the maps that `edit --mask` and masks.png show


def sow_mask(module: nn.Module, mask: jnp.ndarray) -> None:
  """Declares `mask` (B, h, w, 1) in [0, 1] an attention mask of the generator: inference reads
  every mask sown so (their mean, resized to the image); training never asks, so it costs
  nothing there."""
  module.sow(MASKS, 'mask', mask)


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
      x = layers.upsample2(x)
    stride = 2 if self.scale == 'down' else 1
    h = layers.reflect_pad(x, self.kernel // 2)
    h = layers.conv(
      self.features, self.kernel, stride, 0, use_bias=not self.norm, dtype=self.dtype
    )(h)
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
      up2 = layers.upsample_nearest(up2, up1.shape[1], up1.shape[2])
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

  @staticmethod
  def min_input_size(hg_depth: int = 2, **_) -> int:
    """The smallest feature map the hourglass can halve `hg_depth` times."""
    return 2**hg_depth

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    f = ConvUnit(self.features, dtype=self.dtype, name='conv1')(x)
    f = ConvUnit(self.features, relu=False, dtype=self.dtype, name='conv2')(f)
    alpha = Hourglass(self.hg_depth, self.mid_features, 1, dtype=self.dtype, name='attention')(f)
    sow_mask(self, alpha)
    return x + alpha * f


def max_over(x: jnp.ndarray, axis: int) -> jnp.ndarray:
  """max(x, axis), keeping the axis, whose gradient goes to the first maximum (as PyTorch's).

  `jnp.max`'s gradient divides by the count of elements equal to the maximum, which is 0 (and
  the gradient NaN) when XLA evaluates the forward value and its recomputation differently.
  """
  idx = jnp.argmax(x, axis=axis, keepdims=True)
  return jnp.take_along_axis(x, idx, axis=axis)


class ChannelGate(nn.Module):
  """Channel attention (CBAM): sigmoid(MLP(avg-pool) + MLP(max-pool)), shape (B, 1, 1, C)."""

  reduction: int = 16
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    ch = x.shape[-1]
    hidden = nn.Dense(
      max(ch // self.reduction, 1), dtype=self.dtype, param_dtype=jnp.float32, name='hidden'
    )
    out = nn.Dense(ch, dtype=self.dtype, param_dtype=jnp.float32, name='out')
    mlp = lambda v: out(nn.relu(hidden(v)))  # shared by both poolings
    flat = x.reshape(x.shape[0], -1, ch)
    logits = mlp(jnp.mean(flat, axis=1)) + mlp(max_over(flat, axis=1)[:, 0])
    return nn.sigmoid(logits)[:, None, None, :]


class SpatialGate(nn.Module):
  """Spatial attention (CBAM): sigmoid(conv7x7([mean_c, max_c])), shape (B, H, W, 1)."""

  kernel: int = 7
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    pooled = jnp.concatenate([jnp.mean(x, -1, keepdims=True), max_over(x, -1)], -1)
    logits = layers.conv(1, self.kernel, 1, self.kernel // 2, dtype=self.dtype)(pooled)
    mask = nn.sigmoid(logits)
    sow_mask(self, mask)
    return mask


class MixedAttention(nn.Module):
  """Channel attention, then spatial attention on the channel-weighted features."""

  reduction: int = 16
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    x = x * ChannelGate(self.reduction, dtype=self.dtype, name='channel')(x)
    return x * SpatialGate(dtype=self.dtype, name='spatial')(x)


class MMARM(nn.Module):
  """MMA-GAN's multi-scale mixed attention residual module: x + MA(U(x)).

  U is an encoder-decoder over `depth` scales: stride-2 4x4 convs down, nearest x2 + 3x3 conv up,
  with a residual link adding each encoder level to the decoder level of the same size; then a
  3x3 conv and the mixed attention MA. Convs are bias-free and followed by affine IN (StarGAN's
  convention). The paper gives no layer sizes; the number of scales is `depth`.
  """

  features: int
  depth: int = 2
  reduction: int = 16
  dtype: layers.Dtype = jnp.float32

  @staticmethod
  def min_input_size(depth: int = 2, **_) -> int:
    """The smallest feature map the encoder-decoder can halve `depth` times."""
    return 2**depth

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if min(x.shape[1:3]) < 2**self.depth:
      raise ValueError(
        f'an MMARM of depth {self.depth} needs features of at least '
        f'{2**self.depth}x{2**self.depth}, got {x.shape[1]}x{x.shape[2]}: '
        'raise data.image_size or lower generator.num_down.'
      )
    d, ch = self.dtype, self.features
    conv_in = lambda h, k, s, p, relu=True: (nn.relu if relu else (lambda z: z))(
      layers.instance_norm(dtype=d)(layers.conv(ch, k, s, p, use_bias=False, dtype=d)(h))
    )
    h = conv_in(x, 3, 1, 1)
    skips = []
    for _ in range(self.depth):
      skips.append(h)
      h = conv_in(h, 4, 2, 1)
    for skip in reversed(skips):
      h = layers.upsample_nearest(h, skip.shape[1], skip.shape[2])
      h = conv_in(h, 3, 1, 1) + skip  # residual link between matching levels
    h = conv_in(h, 3, 1, 1, relu=False)
    return x + MixedAttention(self.reduction, dtype=d, name='attention')(h)
