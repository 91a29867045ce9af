"""CycleGAN Face2Anime (Lin et al. 2018; CycleGAN, Zhu et al. 2017) on the synthetic faces.

Two unpaired domains: A = the faces' shaded 'photo' style, B = their flat 'anime' style. The
truth of a translation is the same face rendered in the other style, so eval.py scores both
directions pixel-wise.

Variants (`--config configs/cyclegan.py:VARIANT`):
  ""      the paper: 64 px, the ResNet generator with 9 blocks (64 filters, InstanceNorm,
          dropout 0.5), the paper's 3-layer discriminator (a 4x4 score map), BCE adversarial
          loss, cycle weight 10, no identity loss, history pool of 50, batch 1 and Adam 2e-4
          (0.5, 0.999) as the CycleGAN code, 200k iterations with linear decay over the last
          100k.
  "quick" the embedded default: trains on a 2-core CPU in minutes (32 px, 16 filters,
          6 blocks, no dropout, batch 8, 3000 iterations, decay over the last 1500), with the
          identity loss (0.5, the CycleGAN code's default) that this short budget needs.
  "tiny"  for tests: 16 px, 4 filters, 1 block.
  Modifiers, alone or after a base with "+", e.g. "quick+unet":
  "unet"      the U-Net generator (skip connections at every scale; depth log2(size); tiny
              runs it at 32 px, as it has at least 5 levels).
  "patchgan"  the CycleGAN code's 70x70 PatchGAN discriminator (3 layers, 64 filters).
  "lsgan"     least-squares adversarial loss (the CycleGAN code's default).
  "identity"  the identity loss with weight 0.5 (the CycleGAN code's default).
  "official"  patchgan + lsgan + identity, no dropout: the CycleGAN code's defaults (its
              cycle_gan model turns dropout off); the layout its checkpoints convert from.

Run:
  python train.py --config configs/cyclegan.py:quick --workdir workdirs/cyclegan_quick
  python eval.py  --workdir workdirs/cyclegan_quick
On your own images (root/trainA, root/trainB, root/testA, root/testB, as the CycleGAN code):
  python train.py --config configs/cyclegan.py --workdir workdirs/face2anime \
    --config.data.source=folder --config.data.root=/data/face2anime
"""

import math

import ml_collections

from configs import variants
from jaxpr_gan import registry

PAPER = {
  'batch_size': 1,
  'n_critic': 1,  # D and G update once per iteration
  'data.image_size': 64,
  'optim.g_lr': 2e-4,
  'optim.d_lr': 2e-4,
  'eval.batch_size': 50,
  'eval.num_grid_faces': 8,
}
QUICK = {
  'batch_size': 8,
  'num_train_steps': 3000,
  'data.image_size': 32,
  'data.num_workers': 1,
  'generator.ngf': 16,
  'generator.num_blocks': 6,
  'generator.dropout': 0.0,
  'discriminator.ndf': 16,
  # Without it, 3000 iterations leave the translations as high-frequency noise that the cycle
  # can decode (docs/results.md); the CycleGAN code uses the same 0.5 by default.
  'loss.lambda_identity': 0.5,
  'optim.num_decay_steps': 1500,
  'sample_every': 500,
  'checkpoint_every': 500,
}
TINY = {
  'batch_size': 8,
  'num_train_steps': 4,
  'data.image_size': 16,
  'data.num_workers': 0,
  'generator.ngf': 4,
  'generator.num_blocks': 1,
  'generator.dropout': 0.0,
  'discriminator.ndf': 4,
  'loss.pool_size': 3,
  'optim.num_decay_steps': 2,
  'log_every': 2,
  'sample_every': 4,
  'checkpoint_every': 2,
  'num_sample_faces': 2,
  'eval.num_grid_faces': 2,
  'eval.num_identities': 10,
}
BASES = {'': {}, 'quick': QUICK, 'tiny': TINY}
MODIFIERS = ('unet', 'patchgan', 'lsgan', 'identity', 'official')


def _unet(c: ml_collections.ConfigDict) -> None:
  """The official U-Net has at least 5 levels (32 px at least); down to 1x1: log2(size)."""
  c.data.image_size = max(c.data.image_size, 32)
  c.generator = ml_collections.ConfigDict(
    dict(
      architecture='unet',
      ngf=c.generator.ngf,
      num_downs=int(math.log2(c.data.image_size)),
      dropout=c.generator.dropout,
    )
  )


def _patchgan(c: ml_collections.ConfigDict) -> None:
  """The 70x70 PatchGAN: 3 layers need 24 px at least (tiny runs at 32)."""
  c.data.image_size = max(c.data.image_size, 32)
  c.discriminator = ml_collections.ConfigDict(
    dict(architecture='patch', ndf=c.discriminator.ndf, num_layers=3)
  )


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  base, modifiers = variants.parse(variant, MODIFIERS)
  c = registry.default_config('cyclegan')
  # architecture 'resnet': num_blocks residual blocks between num_down halvings; 'unet': see
  # _unet. dropout 0.5 inside the blocks, as the paper.
  c.generator = ml_collections.ConfigDict(
    dict(architecture='resnet', ngf=64, num_blocks=9, num_down=2, dropout=0.5)
  )
  # architecture 'basic': the paper's 3-layer net; 'patch': see _patchgan.
  c.discriminator = ml_collections.ConfigDict(dict(architecture='basic', ndf=64))
  c.loss = ml_collections.ConfigDict(
    dict(
      adversarial='bce',
      lambda_gp=10.0,
      lambda_r1=0.0,
      r1_every=1,
      lambda_a=10.0,
      lambda_b=10.0,
      lambda_identity=0.0,
      pool_size=50,
    )
  )
  variants.apply(c, PAPER, BASES[base])
  for m in modifiers:
    if m == 'unet':
      _unet(c)
    if m in ('patchgan', 'official'):
      _patchgan(c)
    if m in ('lsgan', 'official'):
      c.loss.adversarial = 'lsgan'
    if m in ('identity', 'official'):
      c.loss.lambda_identity = 0.5
    if m == 'official':  # its cycle_gan model turns dropout off
      c.generator.dropout = 0.0
  return c
