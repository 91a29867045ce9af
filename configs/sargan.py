"""SARGAN (Akram & Khan) on the synthetic expression faces.

StarGAN's objective (WGAN-GP + expression classification + cycle L1) and discriminator, with a
generator whose residual blocks are replaced by one spatial-attention residual block (SARB) and
an image residual, G(x, c) = tanh(...) + x.

Variants (`--config configs/sargan.py:VARIANT`):
  ""      the paper: 128 px, 7 expressions, 64 filters, one SARB, batch 8, n_critic 5,
          Adam 1e-4 (0.5, 0.999), lambda_cls 1, lambda_cyc 10; 200k iterations with linear
          decay over the last 100k (StarGAN's schedule, which the official code keeps).
  "quick" the embedded default: trains on a 2-core CPU in minutes, comparable with
          configs/stargan.py:quick (32 px, 5 expressions, 16 filters, n_critic 3, lr 2e-4,
          EMA of G 0.99, 4500 steps; D with 16 filters and 5 stride-2 convolutions).
  "tiny"  for tests: 16 px, 4 filters.
  Modifiers, alone (on the paper settings) or after a base with "+", e.g. "quick+six_sarb":
  "code_lambda"        the official code's default lambda_rec = 1 instead of the paper's 10.
  "vanilla_block"      StarGAN's plain residual block in place of the SARB (paper ablation).
  "six_sarb"           six SARBs (as many blocks as StarGAN).
  "no_image_residual"  G(x, c) = tanh(...), without "+ x".

Run:
  python train.py --config configs/sargan.py:quick --workdir workdirs/sargan_quick
  python eval.py  --config configs/sargan.py:quick --workdir workdirs/sargan_quick
  python train.py --config configs/sargan.py:quick+vanilla_block --workdir workdirs/sargan_vanilla
On your own images (root/<class>/*.jpg, e.g. 7 expressions as in the paper):
  python train.py --config configs/sargan.py --workdir workdirs/mine \
    --config.data.source=folder --config.data.train_dir=/data/faces/train \
    --config.data.test_dir=/data/faces/test --config.data.num_classes=7
"""
import ml_collections

from configs import stargan
from configs import variants

MODIFIERS = ('code_lambda', 'vanilla_block', 'six_sarb', 'no_image_residual')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  base, modifiers = variants.parse(variant, MODIFIERS)
  # StarGAN's settings of the same size, with SARGAN's generator and the paper's batch.
  c = stargan.get_config(base)
  c.model = 'sargan'
  c.batch_size = 8
  if not base:
    c.data.num_classes = 7  # the paper's 7 expressions (quick keeps 5, as StarGAN's quick)
  c.generator = ml_collections.ConfigDict(dict(
      conv_dim=c.generator.conv_dim, num_down=2, num_blocks=1, block='sarb', image_residual=True))
  # lambda_rec is the paper's lambda_cyc (10; the official code's default is 1: "code_lambda").
  for m in modifiers:
    if m == 'code_lambda':
      c.loss.lambda_rec = 1.0
    elif m == 'vanilla_block':
      c.generator.block = 'residual'
    elif m == 'six_sarb':
      c.generator.num_blocks = 6
    elif m == 'no_image_residual':
      c.generator.image_residual = False
  return c
