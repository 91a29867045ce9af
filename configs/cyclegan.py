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
  python eval.py  --config configs/cyclegan.py:quick --workdir workdirs/cyclegan_quick
On your own images (root/trainA, root/trainB, root/testA, root/testB, as the CycleGAN code):
  python train.py --config configs/cyclegan.py --workdir workdirs/face2anime \
    --config.data.source=folder --config.data.root=/data/face2anime
"""
import math

import ml_collections

from configs import common
from configs import variants

MODIFIERS = ('unet', 'patchgan', 'lsgan', 'identity', 'official')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  base, modifiers = variants.parse(variant, MODIFIERS)
  c = ml_collections.ConfigDict()
  c.model = 'cyclegan'
  c.seed = 0
  c.batch_size = 1
  c.num_train_steps = 200_000
  c.n_critic = 1  # D and G update once per iteration
  c.ema_decay = 0.0
  c.compute_dtype = 'float32'  # or 'bfloat16' (mixed precision)
  c.max_nonfinite_steps = 20

  c.data = ml_collections.ConfigDict()
  c.data.source = 'synthetic'  # 'synthetic' | 'folder' (root/{train,test}{A,B}/)
  c.data.groups = 'domains'
  c.data.image_size = 64
  c.data.num_classes = 5  # expressions drawn in both domains
  c.data.styles = ('photo', 'anime')  # domain A, domain B
  c.data.root = ''
  c.data.random_flip = True
  c.data.num_workers = 2
  c.data.seed = 0
  c.data.update(common.data_sources())  # csv, attributes, filename, tfds, array_record

  # architecture: 'resnet' (num_blocks residual blocks between num_down halvings) | 'unet'
  # (unet_num_downs halvings, 0 = down to 1x1: log2(image_size)).
  c.generator = ml_collections.ConfigDict(dict(
      architecture='resnet', ngf=64, num_blocks=9, num_down=2, unet_num_downs=0, dropout=0.5))
  # architecture: 'basic' (the paper's 3-layer net) | 'patch' (num_layers-layer PatchGAN).
  c.discriminator = ml_collections.ConfigDict(dict(architecture='basic', ndf=64, num_layers=3))
  c.loss = ml_collections.ConfigDict(dict(adversarial='bce', lambda_a=10.0, lambda_b=10.0,
                                          lambda_identity=0.0, pool_size=50))
  c.optim = ml_collections.ConfigDict(
      dict(g_lr=2e-4, d_lr=2e-4, b1=0.5, b2=0.999, num_decay_steps=100_000))

  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 10_000
  c.max_checkpoints = 3
  c.num_sample_faces = 8
  # num_identities: score the first N test identities only (0: all 50).
  c.eval = ml_collections.ConfigDict(dict(batch_size=50, num_grid_faces=8, num_identities=0))
  c.eval.update(common.evaluation_suite())

  if base == 'quick':
    c.batch_size = 8
    c.num_train_steps = 3000
    c.data.image_size = 32
    c.data.num_workers = 1
    c.generator.update(ngf=16, num_blocks=6, dropout=0.0)
    c.discriminator.update(ndf=16)
    # Without it, 3000 iterations leave the translations as high-frequency noise that the cycle
    # can decode (README); the CycleGAN code uses the same 0.5 by default.
    c.loss.lambda_identity = 0.5
    c.optim.num_decay_steps = 1500
    c.log_every = 100
    c.sample_every = 500
    c.checkpoint_every = 500
  elif base == 'tiny':
    c.batch_size = 8
    c.num_train_steps = 4
    c.data.image_size = 16
    c.data.num_workers = 0
    c.generator.update(ngf=4, num_blocks=1, dropout=0.0)
    c.discriminator.update(ndf=4)
    c.loss.pool_size = 3
    c.optim.num_decay_steps = 2
    c.log_every = 2
    c.sample_every = 4
    c.checkpoint_every = 2
    c.num_sample_faces = 2
    c.eval.update(batch_size=50, num_grid_faces=2, num_identities=10)
  for m in modifiers:
    if m == 'unet':  # the official U-Net has at least 5 levels: 32 px at least
      c.data.image_size = max(c.data.image_size, 32)
      c.generator.architecture = 'unet'
      c.generator.unet_num_downs = int(math.log2(c.data.image_size))
    if m in ('patchgan', 'official'):  # 3 layers need 24 px at least: tiny runs at 32
      c.data.image_size = max(c.data.image_size, 32)
      c.discriminator.update(architecture='patch', num_layers=3)
    if m in ('lsgan', 'official'):
      c.loss.adversarial = 'lsgan'
    if m in ('identity', 'official'):
      c.loss.lambda_identity = 0.5
    if m == 'official':
      c.generator.dropout = 0.0
  return c
