"""StarGAN (Choi et al. 2018) on the synthetic expression faces.

Variants (`--config configs/stargan.py:VARIANT`):
  ""      the paper / official code: 128 px, 64 filters, 6 residual blocks, batch 16,
          n_critic 5, 200k iterations with linear decay over the last 100k.
  "quick" the embedded benchmark size: trains on a 2-core CPU in minutes (32 px, 16 filters,
          3 residual blocks, n_critic 3, learning rate 2e-4, EMA of G).
  "tiny"  for tests: 16 px, 4 filters, 1 residual block.
SARGAN, MMA-GAN and DCAM-GAN start from these settings (configs/sargan.py, mmagan.py, dcam.py).

Run:
  python train.py --config configs/stargan.py:quick --workdir workdirs/stargan_quick
  python eval.py  --workdir workdirs/stargan_quick
On your own images (root/<class>/*.jpg, as RaFD):
  python train.py --config configs/stargan.py --workdir workdirs/mine \
    --config.data.source=folder --config.data.train_dir=/data/rafd/train \
    --config.data.test_dir=/data/rafd/test --config.data.num_classes=8
"""

import ml_collections

from configs import variants
from jaxpr_gan import registry

QUICK = {
  'num_train_steps': 4500,
  'n_critic': 3,
  'ema_decay': 0.99,
  'data.image_size': 32,
  'data.num_workers': 1,
  'generator.conv_dim': 16,
  'generator.num_blocks': 3,
  'discriminator.conv_dim': 16,
  'discriminator.repeat_num': 5,
  'optim.g_lr': 2e-4,
  'optim.d_lr': 2e-4,
  'optim.num_decay_steps': 2000,
  'log_every': 100,
  'sample_every': 500,
  'checkpoint_every': 500,
}
TINY = {
  'batch_size': 8,
  'num_train_steps': 4,
  'n_critic': 2,
  'data.image_size': 16,
  'data.num_workers': 0,
  'generator.conv_dim': 4,
  'generator.num_blocks': 1,
  'discriminator.conv_dim': 4,
  'discriminator.repeat_num': 4,
  'optim.num_decay_steps': 2,
  'log_every': 2,
  'sample_every': 4,
  'checkpoint_every': 2,
  'num_sample_faces': 2,
  'eval.batch_size': 50,
  'eval.num_grid_faces': 2,
  'eval.num_identities': 10,
}
BASES = {'': {}, 'quick': QUICK, 'tiny': TINY}


def get_config(variant: str = '', model: str = 'stargan') -> ml_collections.ConfigDict:
  """StarGAN's settings; `model` starts a descendant from them (its own keys included)."""
  base, _ = variants.parse(variant, ())
  c = registry.default_config(model)
  c.generator = ml_collections.ConfigDict(
    dict(
      conv_dim=64, num_blocks=6, num_down=2, block='residual', block_args={}, image_residual=False
    )
  )
  c.discriminator = ml_collections.ConfigDict(dict(conv_dim=64, repeat_num=6))
  c.loss = ml_collections.ConfigDict(
    dict(
      adversarial='wgan_gp',
      lambda_cls=1.0,
      lambda_rec=10.0,
      lambda_gp=10.0,
      lambda_r1=0.0,
      r1_every=1,
    )
  )
  return variants.apply(c, BASES[base])
