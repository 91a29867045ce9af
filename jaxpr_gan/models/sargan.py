"""SARGAN generator (Akram & Khan), as arbishakram/SARGAN's generator.py.

StarGAN's generator with its 6 residual blocks replaced by one spatial-attention residual block
(SARB, `jaxpr_gan.attention`), and an image residual: G(x, c) = tanh(...) + x, not clamped
(eq. 2). The discriminator is StarGAN's (`jaxpr_gan.models.stargan.Discriminator`).

Options beyond the paper: `num_blocks` SARBs in a row; `block='residual'` puts StarGAN's plain
residual blocks in their place (the paper's ablation); `image_residual=False` drops the "+ x".
The official code also builds a second attention module (`self.att_func = SEDN(2, 3, 1)`) that
its forward pass never uses; it is left out here.
"""
import flax.linen as nn
import jax.numpy as jnp

from jaxpr_gan import attention
from jaxpr_gan import layers


class Generator(nn.Module):
  """Maps (image in [-1, 1], target-domain vector) to an image (in [-2, 2] with the residual)."""
  conv_dim: int = 64
  num_down: int = 2
  num_blocks: int = 1
  block: str = 'sarb'  # 'sarb' | 'residual'
  image_residual: bool = True
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, c: jnp.ndarray) -> jnp.ndarray:
    if self.block not in ('sarb', 'residual'):
      raise ValueError(f"unknown block {self.block!r}: use 'sarb' or 'residual'.")
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
      if self.block == 'sarb':
        h = attention.SARB(ch, dtype=d)(h)
      else:
        h = layers.ResidualBlock(ch, dtype=d)(h)
    for _ in range(self.num_down):
      ch //= 2
      h = layers.conv_transpose(ch, 4, 2, 1, use_bias=False, dtype=d)(h)
      h = nn.relu(layers.instance_norm(dtype=d)(h))
    h = layers.conv(3, 7, 1, 3, use_bias=False, dtype=d, name='to_rgb')(h)
    y = jnp.tanh(h).astype(jnp.float32)
    if self.image_residual:
      y = y + x.astype(jnp.float32)
    return y
