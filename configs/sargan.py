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

MODIFIERS = ('code_lambda', 'vanilla_block', 'six_sarb', 'no_image_residual')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model = 'sargan'
  c.seed = 0
  c.batch_size = 8
  c.num_train_steps = 200_000
  c.n_critic = 5  # one G update per n_critic D updates
  c.ema_decay = 0.0  # 0 disables the EMA copy of G

  c.data = ml_collections.ConfigDict()
  c.data.source = 'synthetic'  # 'synthetic' | 'folder'
  c.data.image_size = 128
  c.data.num_classes = 7  # neutral, happy, sad, angry, surprised, fearful, disgusted
  c.data.style = 'anime'
  c.data.intensity_range = (1.0, 1.0)
  c.data.train_dir = ''
  c.data.test_dir = ''
  c.data.random_flip = True
  c.data.num_workers = 2
  c.data.seed = 0

  # block: 'sarb' | 'residual' (StarGAN's); image_residual: G(x, c) = tanh(...) + x (eq. 2).
  c.generator = ml_collections.ConfigDict(
      dict(conv_dim=64, num_down=2, num_blocks=1, block='sarb', image_residual=True))
  c.discriminator = ml_collections.ConfigDict(dict(conv_dim=64, repeat_num=6))
  # lambda_rec is the paper's lambda_cyc (10; the official code's default is 1: "code_lambda").
  c.loss = ml_collections.ConfigDict(dict(lambda_cls=1.0, lambda_rec=10.0, lambda_gp=10.0))
  c.optim = ml_collections.ConfigDict(
      dict(g_lr=1e-4, d_lr=1e-4, b1=0.5, b2=0.999, num_decay_steps=100_000))

  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 10_000
  c.max_checkpoints = 3
  c.num_sample_faces = 8
  c.eval = ml_collections.ConfigDict(dict(batch_size=64, num_grid_faces=10))

  base, *modifiers = variant.split('+')
  if base in MODIFIERS:  # a modifier alone applies to the paper settings
    base, modifiers = '', [base, *modifiers]
  if base == 'quick':
    c.num_train_steps = 4500
    c.n_critic = 3
    c.ema_decay = 0.99
    c.data.image_size = 32
    c.data.num_classes = 5  # as configs/stargan.py:quick, to compare the two
    c.data.num_workers = 1
    c.generator.update(conv_dim=16)
    c.discriminator.update(conv_dim=16, repeat_num=5)
    c.optim.update(g_lr=2e-4, d_lr=2e-4, num_decay_steps=2000)
    c.log_every = 100
    c.sample_every = 500
    c.checkpoint_every = 500
  elif base == 'tiny':
    c.batch_size = 8
    c.num_train_steps = 4
    c.n_critic = 2
    c.data.image_size = 16
    c.data.num_classes = 5
    c.data.num_workers = 0
    c.generator.update(conv_dim=4)
    c.discriminator.update(conv_dim=4, repeat_num=4)
    c.optim.num_decay_steps = 2
    c.log_every = 2
    c.sample_every = 4
    c.checkpoint_every = 2
    c.num_sample_faces = 2
    c.eval.update(batch_size=50, num_grid_faces=2)
  elif base:
    raise ValueError(f"unknown variant {variant!r}: use '', 'quick' or 'tiny', optionally "
                     f"followed by '+MODIFIER' with MODIFIER in {sorted(MODIFIERS)}.")
  for m in modifiers:
    if m not in MODIFIERS:
      raise ValueError(f'unknown modifier {m!r} in {variant!r}; known: {sorted(MODIFIERS)}')
    if m == 'code_lambda':
      c.loss.lambda_rec = 1.0
    elif m == 'vanilla_block':
      c.generator.block = 'residual'
    elif m == 'six_sarb':
      c.generator.num_blocks = 6
    elif m == 'no_image_residual':
      c.generator.image_residual = False
  return c
