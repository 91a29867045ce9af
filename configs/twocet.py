"""2CET-GAN (Hu et al.) on the synthetic faces: expression transfer without emotion labels.

Training sees two unlabelled groups: neutral faces and emotional faces (every other expression).
On the synthetic faces the truth of a transfer is the target identity rendered with the
reference's expression, so eval.py scores reference-based transfer pixel-wise, and measures how
the output's expression follows a scaled class-mean code.

Variants (`--config configs/twocet.py:VARIANT`):
  ""      the paper and the official code's training command: 128 px, code_dim 32, codes
          U(-0.5, 0.5), grayscale encoder, batch 8, Adam 1e-4 (0, 0.99) with weight decay
          1e-4 for G, E and D, R1 weight 0.5, EMA of G and E 0.999, 100k iterations; dynamic
          weights lambda_code 0 -> 1 over 5k steps, lambda_ds 1 -> 0 over 10k, lambda_cyc_e
          1 -> 1.5 over 10k.
  "quick" the embedded default: trains on a 2-core CPU in minutes (32 px, 16 base filters,
          3000 iterations, the dynamic weights' ramps scaled to 500 / 1000 / 1000 steps).
  "tiny"  for tests: 16 px, 8 base filters.
  Modifiers: "color_encoder" (the paper's ablation without the grayscale encoder),
  "constant_weights" (the ablation with lambda_code and lambda_cyc_e held at 1).

Run:
  python train.py --config configs/twocet.py:quick --workdir workdirs/twocet_quick
  python eval.py  --workdir workdirs/twocet_quick
On your own faces (root/{train,test}/neutral/*.jpg and root/{train,test}/emotional/
[<expression>/]*.jpg; expression subfolders only name the classes for the code-scale report):
  python train.py --config configs/twocet.py --workdir workdirs/cfee \
    --config.data.source=folder --config.data.root=/data/cfee
"""

import ml_collections

from configs import variants
from jaxpr_gan import registry

PAPER = {
  'batch_size': 8,
  'num_train_steps': 100_000,
  'n_critic': 1,
  'ema_decay': 0.999,  # the official "stable" copies of G and E
  'data.style': 'photo',
  'optim.b1': 0.0,
  'optim.b2': 0.99,
  'optim.weight_decay': 1e-4,
  'optim.num_decay_steps': 0,
  'sample_every': 5000,
  'checkpoint_every': 5000,
  'eval.batch_size': 50,
  'eval.num_grid_faces': 8,
}
QUICK = {
  'num_train_steps': 3000,
  'ema_decay': 0.99,
  'data.image_size': 32,
  'data.num_workers': 1,
  'generator.dim_in': 16,
  'generator.max_conv_dim': 64,
  'discriminator.dim_in': 16,
  'discriminator.max_conv_dim': 64,
  'loss.code_weight': (0.0, 1.0, 500),
  'loss.ds_weight': (1.0, 0.0, 1000),
  'loss.cyc_e_weight': (1.0, 1.5, 1000),
  'optim.g_lr': 2e-4,
  'optim.d_lr': 2e-4,
  'sample_every': 500,
  'checkpoint_every': 500,
}
TINY = {
  'num_train_steps': 4,
  'ema_decay': 0.9,
  'data.image_size': 16,
  'data.num_workers': 0,
  'generator.code_dim': 4,
  'generator.dim_in': 8,
  'generator.max_conv_dim': 16,
  'discriminator.dim_in': 8,
  'discriminator.max_conv_dim': 16,
  'loss.code_weight': (0.0, 1.0, 2),
  'loss.ds_weight': (1.0, 0.0, 2),
  'loss.cyc_e_weight': (1.0, 1.5, 2),
  'log_every': 2,
  'sample_every': 4,
  'checkpoint_every': 2,
  'num_sample_faces': 2,
  'eval.batch_size': 40,
  'eval.num_grid_faces': 2,
  'eval.num_identities': 10,
  'eval.code_scales': (0.0, 0.5, 1.0),
  'eval.intensity_grid': 5,
  'eval.codes_per_class': 8,
}
BASES = {'': {}, 'quick': QUICK, 'tiny': TINY}
MODIFIERS = {
  'color_encoder': {'encoder.grayscale': False},
  'constant_weights': {'loss.code_weight': (1.0, 1.0, 0), 'loss.cyc_e_weight': (1.0, 1.0, 0)},
}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  base, modifiers = variants.parse(variant, MODIFIERS)
  c = registry.default_config('twocet')
  # dim_in: filters of the first conv (0: the official 2**14 // image_size); max_conv_dim caps
  # the doubling. The encoder and the discriminator's trunk have the same widths.
  c.generator = ml_collections.ConfigDict(dict(code_dim=32, dim_in=0, max_conv_dim=512))
  c.encoder = ml_collections.ConfigDict(dict(grayscale=True))
  c.discriminator = ml_collections.ConfigDict(dict(dim_in=0, max_conv_dim=512))
  # Non-saturating BCE with R1 on real faces, as the official code. *_weight: (start, end,
  # steps) of a linear ramp in the step (objectives.losses.ramp).
  c.loss = ml_collections.ConfigDict(
    dict(
      adversarial='bce',
      lambda_gp=10.0,
      lambda_r1=0.5,
      r1_every=1,
      code_range=(-0.5, 0.5),
      lambda_adv_e=1.0,
      lambda_adv_n=1.0,
      lambda_cyc_n=1.0,
      code_weight=(0.0, 1.0, 5000),
      ds_weight=(1.0, 0.0, 10000),
      cyc_e_weight=(1.0, 1.5, 10000),
      proportional_ds=True,
    )
  )
  return variants.apply(c, PAPER, BASES[base], *(MODIFIERS[m] for m in modifiers))
