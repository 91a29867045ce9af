"""SARGAN (Akram & Khan) on the synthetic expression faces.

StarGAN's objective (WGAN-GP + expression classification + cycle L1) and discriminator, with a
preset of StarGAN's generator: its residual blocks replaced by one spatial-attention residual
block (block 'sarb', jaxpr_gan/nn/attention.py) and an image residual, G(x, c) = tanh(...) + x.

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
  python eval.py  --workdir workdirs/sargan_quick
  python train.py --config configs/sargan.py:quick+vanilla_block --workdir workdirs/sargan_vanilla
On your own images (root/<class>/*.jpg, e.g. 7 expressions as in the paper):
  python train.py --config configs/sargan.py --workdir workdirs/mine \
    --config.data.source=folder --config.data.train_dir=/data/faces/train \
    --config.data.test_dir=/data/faces/test --config.data.num_classes=7
"""

from configs import stargan
from configs import variants

# StarGAN's generator with one SARB (its hourglass: depth 2, 64 middle channels) and "+ x".
PRESET = {
  'batch_size': 8,
  'generator.num_blocks': 1,
  'generator.block': 'sarb',
  'generator.block_args': {'hg_depth': 2, 'mid_features': 64},
  'generator.image_residual': True,
}
PAPER = {'data.num_classes': 7}  # quick keeps 5, as StarGAN's quick
# lambda_rec is the paper's lambda_cyc (10; the official code's default is 1: "code_lambda").
MODIFIERS = {
  'code_lambda': {'loss.lambda_rec': 1.0},
  'vanilla_block': {'generator.block': 'residual', 'generator.block_args': {}},
  'six_sarb': {'generator.num_blocks': 6},
  'no_image_residual': {'generator.image_residual': False},
}


def get_config(variant: str = ''):
  base, modifiers = variants.parse(variant, MODIFIERS)
  c = stargan.get_config(base, model='sargan')
  return variants.apply(c, PRESET, PAPER if not base else {}, *(MODIFIERS[m] for m in modifiers))
