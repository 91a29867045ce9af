"""StarGAN networks (Choi et al. 2018), layer for layer as yunjey/stargan's model.py.

G: 7x7 conv, `num_down` stride-2 4x4 convs, `num_blocks` residual blocks, `num_down` transposed
4x4 convs, 7x7 conv + tanh; bias-free convs, InstanceNorm with affine parameters. The blocks are
chosen by name (`jaxpr_gan.nn.blocks`), so StarGAN's descendants that change only the
bottleneck and the output are presets of this generator (SARGAN, MMA-GAN: configs/).
D: `repeat_num` stride-2 4x4 convs with LeakyReLU(0.01), then a 3x3 source head (PatchGAN map)
and a class head whose kernel covers the whole remaining map.
"""

from collections.abc import Mapping

from flax.core import FrozenDict
import flax.linen as nn
import jax.numpy as jnp

from jaxpr_gan.nn import blocks
from jaxpr_gan.nn import layers


class Generator(nn.Module):
  """Maps (image in [-1, 1], target-domain vector c) to an image.

  `block` names the bottleneck block (`jaxpr_gan.nn.blocks`), built with `block_args`;
  `image_residual` makes the output tanh(...) + x (not clamped).
  """

  conv_dim: int = 64
  num_blocks: int = 6
  num_down: int = 2
  block: str = 'residual'
  block_args: Mapping = FrozenDict()
  image_residual: bool = False
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, c: jnp.ndarray) -> jnp.ndarray:
    block = blocks.get(self.block)
    d = self.dtype
    h = layers.tile_condition(x, c).astype(d)
    h = layers.conv(self.conv_dim, 7, 1, 3, use_bias=False, dtype=d)(h)
    h = nn.relu(layers.instance_norm(dtype=d)(h))
    ch = self.conv_dim
    for _ in range(self.num_down):
      ch *= 2
      h = layers.conv(ch, 4, 2, 1, use_bias=False, dtype=d)(h)
      h = nn.relu(layers.instance_norm(dtype=d)(h))
    for _ in range(self.num_blocks):
      h = block(ch, dtype=d, **self.block_args)(h)
    for _ in range(self.num_down):
      ch //= 2
      h = layers.conv_transpose(ch, 4, 2, 1, use_bias=False, dtype=d)(h)
      h = nn.relu(layers.instance_norm(dtype=d)(h))
    h = layers.conv(3, 7, 1, 3, use_bias=False, dtype=d, name='to_rgb')(h)
    y = jnp.tanh(h).astype(jnp.float32)
    return y + x.astype(jnp.float32) if self.image_residual else y


class Discriminator(nn.Module):
  """Returns (source logits map (B, s, s, 1), class logits (B, num_classes))."""

  image_size: int = 128
  num_classes: int = 5
  conv_dim: int = 64
  repeat_num: int = 6
  dtype: layers.Dtype = jnp.float32

  def _trunk(self, x: jnp.ndarray) -> jnp.ndarray:
    """The shared stride-2 conv stack; heads of subclasses read its output."""
    if self.image_size // 2**self.repeat_num < 1 or self.image_size % 2**self.repeat_num:
      raise ValueError(
        f'image_size {self.image_size} must be a multiple of 2**repeat_num '
        f'(= {2**self.repeat_num}); lower d_repeat_num or change the size.'
      )
    d = self.dtype
    h = x.astype(d)
    ch = self.conv_dim
    for i in range(self.repeat_num):
      h = layers.conv(ch, 4, 2, 1, dtype=d)(h)
      h = nn.leaky_relu(h, negative_slope=0.01)
      if i < self.repeat_num - 1:
        ch *= 2
    return h

  def _map_head(self, h: jnp.ndarray, features: int, name: str) -> jnp.ndarray:
    """A 3x3 conv: one value per patch (PatchGAN)."""
    return layers.conv(features, 3, 1, 1, use_bias=False, dtype=self.dtype, name=name)(h)

  def _global_head(self, h: jnp.ndarray, features: int, name: str) -> jnp.ndarray:
    """A conv whose kernel covers the whole map: one vector per image, (B, features)."""
    kernel = self.image_size // 2**self.repeat_num
    out = layers.conv(features, kernel, 1, 0, use_bias=False, dtype=self.dtype, name=name)(h)
    return out.reshape(h.shape[0], -1).astype(jnp.float32)

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    h = self._trunk(x)
    out_src = self._map_head(h, 1, 'src_head').astype(jnp.float32)
    return out_src, self._global_head(h, self.num_classes, 'cls_head')
