"""DCAM-GAN generator (Rao et al., decoder control and attention mask for anime expressions).

G(x, c) = M * y + (1 - M) * x (eq. 8), with
  F      the mapping network: 9 dense layers, ReLU after each, one-hot c -> control k (eq. 2);
  G_trans x -> y, StarGAN's encoder (7x7 conv and `num_down` stride-2 convs, the paper's "three
         down-sampling layers", then residual bottlenecks with affine IN) and a decoder whose
         every convolution but the last is followed by AdaIN(X, k) = (1 + f(k)_1) IN(X) + f(k)_2
         (eq. 5): residual bottlenecks, transposed convolutions, then a 7x7 conv and tanh;
  G_att  x -> M in [0, 1], the same shape with affine IN everywhere, its own bottlenecks and a
         last conv to one channel and a sigmoid (eq. 6).
The paper's Table 1 ablations switch the parts: without decoder control, G_trans is StarGAN's
generator (c tiled onto x); without the attention mask, G(x, c) = y.
The discriminator is StarGAN's (a shared trunk without normalisation, a PatchGAN source head
and an expression head).
"""

import flax.linen as nn
import jax.numpy as jnp

from jaxpr_gan.models import stargan
from jaxpr_gan.nn import attention
from jaxpr_gan.nn import layers


class MappingNetwork(nn.Module):
  """One-hot labels (B, k) -> control information (B, out_dim): dense layers, ReLU after each."""

  hidden_dim: int = 512
  out_dim: int = 64
  num_layers: int = 9
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, c: jnp.ndarray) -> jnp.ndarray:
    h = c.astype(self.dtype)
    for i in range(self.num_layers):
      width = self.out_dim if i == self.num_layers - 1 else self.hidden_dim
      h = nn.relu(nn.Dense(width, dtype=self.dtype, param_dtype=jnp.float32)(h))
    return h


class AdaINResidualBlock(nn.Module):
  """x + AdaIN(conv3x3(relu(AdaIN(conv3x3(x), k))), k): StarGAN's block, the control injected."""

  features: int
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, k: jnp.ndarray) -> jnp.ndarray:
    d = self.dtype
    h = layers.conv(self.features, 3, 1, 1, use_bias=False, dtype=d)(x)
    h = nn.relu(layers.AdaIN(self.features, dtype=d)(h, k))
    h = layers.conv(self.features, 3, 1, 1, use_bias=False, dtype=d)(h)
    return x + layers.AdaIN(self.features, dtype=d)(h, k)


def _encode(x: jnp.ndarray, conv_dim: int, num_down: int, num_res: int, dtype) -> jnp.ndarray:
  """7x7 conv, `num_down` stride-2 4x4 convs, `num_res` residual blocks; IN + ReLU throughout."""
  h = layers.conv(conv_dim, 7, 1, 3, use_bias=False, dtype=dtype)(x.astype(dtype))
  h = nn.relu(layers.instance_norm(dtype=dtype)(h))
  ch = conv_dim
  for _ in range(num_down):
    ch *= 2
    h = layers.conv(ch, 4, 2, 1, use_bias=False, dtype=dtype)(h)
    h = nn.relu(layers.instance_norm(dtype=dtype)(h))
  for _ in range(num_res):
    h = layers.ResidualBlock(ch, dtype=dtype)(h)
  return h


class TransformNetwork(nn.Module):
  """G_trans(x, k) -> the expression-region colouring y in [-1, 1] (eq. 4)."""

  conv_dim: int = 64
  num_down: int = 2
  num_enc_res: int = 3
  num_dec_res: int = 3
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, k: jnp.ndarray) -> jnp.ndarray:
    d = self.dtype
    h = _encode(x, self.conv_dim, self.num_down, self.num_enc_res, d)
    ch = self.conv_dim * 2**self.num_down
    k = k.astype(d)
    for _ in range(self.num_dec_res):
      h = AdaINResidualBlock(ch, dtype=d)(h, k)
    for _ in range(self.num_down):
      ch //= 2
      h = layers.conv_transpose(ch, 4, 2, 1, use_bias=False, dtype=d)(h)
      h = nn.relu(layers.AdaIN(ch, dtype=d)(h, k))
    h = layers.conv(3, 7, 1, 3, use_bias=False, dtype=d, name='to_rgb')(h)
    return jnp.tanh(h).astype(jnp.float32)


class MaskNetwork(nn.Module):
  """G_att(x) -> the attention mask M (B, H, W, 1) in [0, 1] (eq. 6)."""

  conv_dim: int = 64
  num_down: int = 2
  num_res: int = 6
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    d = self.dtype
    h = _encode(x, self.conv_dim, self.num_down, self.num_res, d)
    ch = self.conv_dim * 2**self.num_down
    for _ in range(self.num_down):
      ch //= 2
      h = layers.conv_transpose(ch, 4, 2, 1, use_bias=False, dtype=d)(h)
      h = nn.relu(layers.instance_norm(dtype=d)(h))
    h = layers.conv(1, 7, 1, 3, dtype=d, name='to_mask')(h)
    return nn.sigmoid(h.astype(jnp.float32))


def blend(x: jnp.ndarray, y: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """y* = M * y + (1 - M) * x (eq. 7): the change only where the mask is on."""
  return mask * y + (1.0 - mask) * x


class Generator(nn.Module):
  """G(x in [-1, 1], one-hot c) -> image; the mask is sown as the attention mask (`sow_mask`)."""

  conv_dim: int = 64
  num_down: int = 2
  num_enc_res: int = 3
  num_dec_res: int = 3
  num_mask_res: int = 6
  mapping_dim: int = 512
  mapping_layers: int = 9
  control_dim: int = 64
  decoder_control: bool = True
  attention_mask: bool = True
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, c: jnp.ndarray) -> jnp.ndarray:
    x = x.astype(jnp.float32)
    if self.decoder_control:
      k = MappingNetwork(
        self.mapping_dim, self.control_dim, self.mapping_layers, dtype=self.dtype, name='mapping'
      )(c)
      y = TransformNetwork(
        self.conv_dim,
        self.num_down,
        self.num_enc_res,
        self.num_dec_res,
        dtype=self.dtype,
        name='trans',
      )(x, k)
    else:  # StarGAN's generator: the label tiled onto the input, as many bottlenecks
      y = stargan.Generator(
        self.conv_dim,
        self.num_enc_res + self.num_dec_res,
        self.num_down,
        dtype=self.dtype,
        name='trans',
      )(x, c)
    if not self.attention_mask:
      return y
    mask = MaskNetwork(
      self.conv_dim, self.num_down, self.num_mask_res, dtype=self.dtype, name='att'
    )(x)
    attention.sow_mask(self, mask)
    return blend(x, y, mask)
