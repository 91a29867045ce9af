"""2CET-GAN networks (Hu et al.), layer for layer as the official code (2CET-GAN, Model.py).

They are StarGAN v2's networks without its mapping network: the expression code comes from an
image encoder instead of noise.

G: 3x3 conv, log2(size) - 4 downsampling residual blocks with InstanceNorm, 2 bottleneck blocks,
   then the mirror image of AdaIN residual blocks driven by the code (nearest upsampling), and
   to_rgb = affine IN + LeakyReLU + 1x1 conv (no tanh, as the official code).
E: optional grayscale (mean over channels), a trunk of a 3x3 conv, log2(size) - 2 downsampling
   residual blocks without norm, LeakyReLU, 4x4 valid conv, LeakyReLU (a 1x1 map), then a Dense.
D: its own trunk, a 1x1 conv to one logit per domain (0 neutral, 1 emotional), and the logit of
   the requested domain per sample.

Channels start at dim_in = 2**14 // image_size and double per downsampling up to max_conv_dim.
Every residual block returns (shortcut + residual) / sqrt(2) to keep unit variance.
Parameter names follow the official modules (conv1, conv2, norm1, norm2, conv1x1, fc) so that
official state dicts map onto them one to one.
"""

import math

import flax.linen as nn
import jax.numpy as jnp

from jaxpr_gan.nn import layers


def _check_size(image_size: int) -> None:
  if image_size < 16 or image_size & (image_size - 1):
    raise ValueError(
      f'image_size {image_size} must be a power of two >= 16 (the encoder trunk '
      'halves it down to 4x4 before a 4x4 valid conv).'
    )


def _dim_in(image_size: int, dim_in: int) -> int:
  """The first width: the official 2**14 // image_size unless given."""
  return dim_in or 2**14 // image_size


def _lrelu(x: jnp.ndarray) -> jnp.ndarray:
  return nn.leaky_relu(x, negative_slope=0.2)


def _avg_pool2(x: jnp.ndarray) -> jnp.ndarray:
  """`F.avg_pool2d(x, 2)`."""
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


class ResBlk(nn.Module):
  """Pre-activation residual block: [IN] LReLU conv3 [avgpool] [IN] LReLU conv3.

  The shortcut is a learned bias-free 1x1 conv when the width changes, then [avgpool].
  """

  features: int
  normalize: bool = False
  downsample: bool = False
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    d = self.dtype
    dim_in = x.shape[-1]
    s = x
    if dim_in != self.features:
      s = layers.conv(self.features, 1, use_bias=False, dtype=d, name='conv1x1')(s)
    if self.downsample:
      s = _avg_pool2(s)
    h = layers.instance_norm(dtype=d, name='norm1')(x) if self.normalize else x
    h = layers.conv(dim_in, 3, 1, 1, dtype=d, name='conv1')(_lrelu(h))
    if self.downsample:
      h = _avg_pool2(h)
    if self.normalize:
      h = layers.instance_norm(dtype=d, name='norm2')(h)
    h = layers.conv(self.features, 3, 1, 1, dtype=d, name='conv2')(_lrelu(h))
    return (s + h) / math.sqrt(2)


class AdainResBlk(nn.Module):
  """Decoder block: AdaIN LReLU [up] conv3 AdaIN LReLU conv3; shortcut [up] [1x1 conv]."""

  features: int
  upsample: bool = False
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, code: jnp.ndarray) -> jnp.ndarray:
    d = self.dtype
    dim_in = x.shape[-1]
    h = _lrelu(layers.AdaIN(dim_in, dtype=d, name='norm1')(x, code))
    if self.upsample:
      h = layers.upsample2(h)
    h = layers.conv(self.features, 3, 1, 1, dtype=d, name='conv1')(h)
    h = _lrelu(layers.AdaIN(self.features, dtype=d, name='norm2')(h, code))
    h = layers.conv(self.features, 3, 1, 1, dtype=d, name='conv2')(h)
    s = layers.upsample2(x) if self.upsample else x
    if dim_in != self.features:
      s = layers.conv(self.features, 1, use_bias=False, dtype=d, name='conv1x1')(s)
    return (h + s) / math.sqrt(2)


class ToRGB(nn.Module):
  """Affine IN, LeakyReLU, 1x1 conv to the image channels (the official `to_rgb` Sequential)."""

  features: int
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    h = _lrelu(layers.instance_norm(dtype=self.dtype, name='norm')(x))
    return layers.conv(self.features, 1, dtype=self.dtype, name='conv')(h)


class Generator(nn.Module):
  """Maps (image, expression code (B, code_dim)) to an image of the same shape.

  Parameters: from_rgb, encode_0..encode_{n+1} (n downsampling blocks, then 2 bottleneck
  blocks), decode_0..decode_{n+1} (2 bottleneck blocks, then n upsampling blocks; the official
  `decode` list order), to_rgb/{norm, conv}. code_dim is set by the code passed in; the field
  only documents the default.
  """

  image_size: int = 128
  code_dim: int = 32
  dim_in: int = 0  # 0: 2**14 // image_size, as the official code
  max_conv_dim: int = 512
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, code: jnp.ndarray) -> jnp.ndarray:
    _check_size(self.image_size)
    d = self.dtype
    ch = _dim_in(self.image_size, self.dim_in)
    h = layers.conv(ch, 3, 1, 1, dtype=d, name='from_rgb')(x.astype(d))
    repeat = int(math.log2(self.image_size)) - 4
    widths = []  # input width of each downsampling block, for the decoder's mirror
    for i in range(repeat):
      widths.append(ch)
      ch = min(ch * 2, self.max_conv_dim)
      h = ResBlk(ch, normalize=True, downsample=True, dtype=d, name=f'encode_{i}')(h)
    for i in range(2):
      h = ResBlk(ch, normalize=True, dtype=d, name=f'encode_{repeat + i}')(h)
    for i in range(2):
      h = AdainResBlk(ch, dtype=d, name=f'decode_{i}')(h, code)
    for i, width in enumerate(reversed(widths)):
      h = AdainResBlk(width, upsample=True, dtype=d, name=f'decode_{2 + i}')(h, code)
    return ToRGB(x.shape[-1], dtype=d, name='to_rgb')(h).astype(jnp.float32)


class EncoderTrunk(nn.Module):
  """The official `EncoderBlk`: image (B, S, S, C) -> features (B, dim_out), S = image_size.

  Parameters: from_rgb, block_0..block_{n-1}, conv_out (the 4x4 valid conv).
  """

  image_size: int = 128
  dim_in: int = 0
  max_conv_dim: int = 512
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    _check_size(self.image_size)
    if x.shape[1:3] != (self.image_size, self.image_size):
      raise ValueError(
        f'expected {self.image_size}x{self.image_size} images, got {x.shape[1]}x{x.shape[2]}.'
      )
    d = self.dtype
    ch = _dim_in(self.image_size, self.dim_in)
    h = layers.conv(ch, 3, 1, 1, dtype=d, name='from_rgb')(x.astype(d))
    for i in range(int(math.log2(self.image_size)) - 2):
      ch = min(ch * 2, self.max_conv_dim)
      h = ResBlk(ch, downsample=True, dtype=d, name=f'block_{i}')(h)
    h = layers.conv(ch, 4, dtype=d, name='conv_out')(_lrelu(h))  # 4x4 -> 1x1
    return _lrelu(h).reshape(h.shape[0], ch)


class Encoder(nn.Module):
  """Expression encoder: image -> code (B, code_dim) float32.

  With `grayscale` (the official `encoder_grey`) the image is averaged over its channels first,
  so the trunk sees one channel and the code ignores colour. Parameters: trunk, head.
  """

  image_size: int = 128
  code_dim: int = 32
  dim_in: int = 0
  max_conv_dim: int = 512
  grayscale: bool = True
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if self.grayscale:
      x = jnp.mean(x, axis=-1, keepdims=True)
    h = EncoderTrunk(
      self.image_size, self.dim_in, self.max_conv_dim, dtype=self.dtype, name='trunk'
    )(x)
    h = nn.Dense(self.code_dim, dtype=self.dtype, param_dtype=jnp.float32, name='head')(h)
    return h.astype(jnp.float32)


class Discriminator(nn.Module):
  """One real/fake logit per domain; returns the requested domain's logit per sample.

  `group` (B,) ints (0 neutral, 1 emotional) -> logits (B,); `group=None` -> all heads
  (B, num_domains). Parameters: trunk, head (a 1x1 conv, as the official code).
  """

  image_size: int = 128
  dim_in: int = 0
  max_conv_dim: int = 512
  num_domains: int = 2
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, group: jnp.ndarray | None = None) -> jnp.ndarray:
    h = EncoderTrunk(
      self.image_size, self.dim_in, self.max_conv_dim, dtype=self.dtype, name='trunk'
    )(x)
    # A 1x1 conv on the 1x1 map is a Dense; kept a conv so that its kernel has the official shape.
    out = layers.conv(self.num_domains, 1, dtype=self.dtype, name='head')(h[:, None, None, :])
    out = out.reshape(h.shape[0], self.num_domains).astype(jnp.float32)
    if group is None:
      return out
    return jnp.take_along_axis(out, jnp.asarray(group, jnp.int32)[:, None], axis=1)[:, 0]
