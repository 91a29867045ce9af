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
  python eval.py  --config configs/twocet.py:quick --workdir workdirs/twocet_quick
On your own faces (root/{train,test}/neutral/*.jpg and root/{train,test}/emotional/
[<expression>/]*.jpg; expression subfolders only name the classes for the code-scale report):
  python train.py --config configs/twocet.py --workdir workdirs/cfee \
    --config.data.source=folder --config.data.root=/data/cfee
"""
import ml_collections

from configs import common
from configs import variants

MODIFIERS = ('color_encoder', 'constant_weights')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  base, modifiers = variants.parse(variant, MODIFIERS)
  c = ml_collections.ConfigDict()
  c.model = 'twocet'
  c.seed = 0
  c.batch_size = 8
  c.num_train_steps = 100_000
  c.n_critic = 1
  c.ema_decay = 0.999  # the official "stable" copies of G and E
  c.compute_dtype = 'float32'  # or 'bfloat16' (mixed precision)
  c.max_nonfinite_steps = 20

  c.data = ml_collections.ConfigDict()
  c.data.source = 'synthetic'  # 'synthetic' | 'folder' (root/{train,test}/{neutral,emotional})
  c.data.groups = 'neutral_emotional'
  c.data.image_size = 128
  c.data.num_classes = 5  # synthetic: neutral + 4 expressions in the emotional group
  c.data.style = 'photo'
  c.data.intensity_range = (1.0, 1.0)
  c.data.root = ''
  c.data.random_flip = True
  c.data.num_workers = 2
  c.data.seed = 0
  c.data.update(common.data_sources())  # csv, attributes, filename, tfds, array_record

  # dim_in: filters of the first conv (0: the official 2**14 // image_size); max_conv_dim caps
  # the doubling. The encoder and the discriminator's trunk have the same widths.
  c.generator = ml_collections.ConfigDict(dict(code_dim=32, dim_in=0, max_conv_dim=512))
  c.encoder = ml_collections.ConfigDict(dict(grayscale=True))
  c.discriminator = ml_collections.ConfigDict(dict(dim_in=0, max_conv_dim=512))
  # *_weight: (start, end, steps) of a linear ramp in the step (losses.ramp).
  c.loss = ml_collections.ConfigDict(dict(
      code_range=(-0.5, 0.5), lambda_adv_e=1.0, lambda_adv_n=1.0, lambda_cyc_n=1.0,
      lambda_r1=0.5, code_weight=(0.0, 1.0, 5000), ds_weight=(1.0, 0.0, 10000),
      cyc_e_weight=(1.0, 1.5, 10000), proportional_ds=True))
  c.optim = ml_collections.ConfigDict(
      dict(g_lr=1e-4, d_lr=1e-4, b1=0.0, b2=0.99, weight_decay=1e-4, num_decay_steps=0))

  c.log_every = 100
  c.sample_every = 5000
  c.checkpoint_every = 5000
  c.max_checkpoints = 3
  c.num_sample_faces = 8
  # code_scales: multiples of each class's mean training code applied to neutral test faces;
  # intensity_grid: rendered intensities the output is matched against; codes_per_class:
  # training faces per class whose codes are averaged (0: all).
  c.eval = ml_collections.ConfigDict(dict(
      batch_size=50, num_grid_faces=8, num_identities=0,
      code_scales=(0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5), intensity_grid=21, codes_per_class=0))
  c.eval.update(common.evaluation_suite())

  if base == 'quick':
    c.num_train_steps = 3000
    c.data.image_size = 32
    c.data.num_workers = 1
    c.generator.update(dim_in=16, max_conv_dim=64)
    c.discriminator.update(dim_in=16, max_conv_dim=64)
    c.loss.update(code_weight=(0.0, 1.0, 500), ds_weight=(1.0, 0.0, 1000),
                  cyc_e_weight=(1.0, 1.5, 1000))
    c.optim.update(g_lr=2e-4, d_lr=2e-4)
    c.ema_decay = 0.99
    c.log_every = 100
    c.sample_every = 500
    c.checkpoint_every = 500
  elif base == 'tiny':
    c.num_train_steps = 4
    c.data.image_size = 16
    c.data.num_workers = 0
    c.generator.update(code_dim=4, dim_in=8, max_conv_dim=16)
    c.discriminator.update(dim_in=8, max_conv_dim=16)
    c.loss.update(code_weight=(0.0, 1.0, 2), ds_weight=(1.0, 0.0, 2),
                  cyc_e_weight=(1.0, 1.5, 2))
    c.ema_decay = 0.9
    c.log_every = 2
    c.sample_every = 4
    c.checkpoint_every = 2
    c.num_sample_faces = 2
    c.eval.update(batch_size=40, num_grid_faces=2, num_identities=10,
                  code_scales=(0.0, 0.5, 1.0), intensity_grid=5, codes_per_class=8)
  for m in modifiers:
    if m == 'color_encoder':
      c.encoder.grayscale = False
    elif m == 'constant_weights':
      c.loss.update(code_weight=(1.0, 1.0, 0), cyc_e_weight=(1.0, 1.0, 0))
  return c
