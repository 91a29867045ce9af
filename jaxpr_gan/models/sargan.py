"""SARGAN generator (Akram & Khan), as arbishakram/SARGAN's generator.py.

StarGAN's generator with its 6 residual blocks replaced by one spatial-attention residual block
(SARB, `jaxpr_gan.attention`), and an image residual: G(x, c) = tanh(...) + x, not clamped
(eq. 2). The discriminator is StarGAN's (`jaxpr_gan.models.stargan.Discriminator`).

Options beyond the paper: `num_blocks` SARBs in a row; `block='residual'` puts StarGAN's plain
residual blocks in their place (the paper's ablation); `image_residual=False` drops the "+ x".
The official code also builds a second attention module (`self.att_func = SEDN(2, 3, 1)`) that
its forward pass never uses; it is left out here.
"""
import jax.numpy as jnp

from jaxpr_gan import layers
from jaxpr_gan.models import stargan


def Generator(conv_dim: int = 64, num_down: int = 2, num_blocks: int = 1,  # pylint: disable=invalid-name
              block: str = 'sarb', image_residual: bool = True,
              dtype: layers.Dtype = jnp.float32) -> stargan.Generator:
  """SARGAN's generator: StarGAN's with `num_blocks` SARBs and the image residual."""
  return stargan.Generator(conv_dim=conv_dim, num_res=num_blocks, num_down=num_down, block=block,
                           image_residual=image_residual, dtype=dtype)
