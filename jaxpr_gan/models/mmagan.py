"""MMA-GAN networks (Liu et al., "Facial Expression Generation Based on Multi-scale Mixed
Attention").

Generator (Fig. 2): StarGAN's generator (`models/stargan.py`) as a preset (configs/mmagan.py):
down-sampling convs, multi-scale mixed attention residual modules (block 'mmarm',
`jaxpr_gan.nn.attention.MMARM`), up-sampling convs, and the global residual connection at RGB
level (GRC, `image_residual`): G(x, z) = tanh(...) + x. Its input has N + 3 channels: the image
and the attribute code z = c * rho tiled over the image. The paper gives no layer sizes; the
convs around the modules are StarGAN's, of which MMA-GAN is a descendant (its baseline in
Table 1).

Discriminator: PatchGAN (StarGAN's conv stack) with four heads: the source map D_src, the class
logits D_cls, the attribute-code regression D_cor (N values) and the intensity regression rho-hat.

Ablations (paper Sec. IV.C, configs/mmagan.py): `block='residual'` replaces the MMARMs by
StarGAN's residual blocks ("w/o MMAR"); `image_residual=False` drops the GRC ("w/o GRC").
"""

import flax.linen as nn
import jax.numpy as jnp

from jaxpr_gan.models import stargan


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
