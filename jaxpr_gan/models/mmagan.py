"""MMA-GAN networks (Liu et al., "Facial Expression Generation Based on Multi-scale Mixed Attention").

Generator (Fig. 2): down-sampling convs, multi-scale mixed attention residual modules (MMARM,
`jaxpr_gan.attention`), up-sampling convs, and the global residual connection at RGB level (GRC):
G(x, z) = tanh(...) + x. Its input has N + 3 channels: the image and the attribute code
z = c * rho tiled over the image. The paper gives no layer sizes; the convs around the modules
are StarGAN's, of which MMA-GAN is a descendant (its baseline in Table 1).

Discriminator: PatchGAN (StarGAN's conv stack) with four heads: the source map D_src, the class
logits D_cls, the attribute-code regression D_cor (N values) and the intensity regression rho-hat.

Ablations (paper Sec. IV.C): `block='residual'` replaces the MMARMs by StarGAN's residual blocks
("w/o MMAR"); `image_residual=False` drops the GRC ("w/o GRC").
"""
import flax.linen as nn
import jax.numpy as jnp

from jaxpr_gan import layers
from jaxpr_gan.models import stargan


def Generator(conv_dim: int = 64, num_down: int = 2, num_blocks: int = 6,  # pylint: disable=invalid-name
              block: str = 'mmarm', image_residual: bool = True,
              dtype: layers.Dtype = jnp.float32) -> stargan.Generator:
  """MMA-GAN's generator: StarGAN's with `num_blocks` MMARMs and the global residual."""
  return stargan.Generator(conv_dim=conv_dim, num_res=num_blocks, num_down=num_down, block=block,
                           image_residual=image_residual, dtype=dtype)


class Discriminator(stargan.Discriminator):
  """Returns (src map (B, s, s, 1), class logits (B, N), code D_cor (B, N), intensity (B,))."""

  @nn.compact
  def __call__(self, x: jnp.ndarray):  # pytype: disable=signature-mismatch
    h = self._trunk(x)
    src = self._map_head(h, 1, 'src_head').astype(jnp.float32)
    cls = self._global_head(h, self.num_classes, 'cls_head')
    cor = self._global_head(h, self.num_classes, 'cor_head')
    rho = self._global_head(h, 1, 'rho_head')[:, 0]
    return src, cls, cor, rho
