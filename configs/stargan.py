"""StarGAN (Choi et al. 2018) on the synthetic expression faces.

Variants (`--config configs/stargan.py:VARIANT`):
  ""      the paper / official code: 128 px, 64 filters, 6 residual blocks, batch 16,
          n_critic 5, 200k iterations with linear decay over the last 100k.
  "quick" the embedded default: trains on a 2-core CPU in under 20 minutes (32 px,
          16 filters, 3 residual blocks, n_critic 3, learning rate 2e-4, EMA of G).
  "tiny"  for tests: 16 px, 4 filters, 1 residual block.

Run:
  python train.py --config configs/stargan.py:quick --workdir workdirs/stargan_quick
  python eval.py  --config configs/stargan.py:quick --workdir workdirs/stargan_quick
On your own images (root/<class>/*.jpg, as RaFD):
  python train.py --config configs/stargan.py --workdir workdirs/mine \
    --config.data.source=folder --config.data.train_dir=/data/rafd/train \
    --config.data.test_dir=/data/rafd/test --config.data.num_classes=8
"""
import ml_collections

from configs import common


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model = 'stargan'
  c.seed = 0
  c.batch_size = 16
  c.num_train_steps = 200_000
  c.n_critic = 5  # one G update per n_critic D updates
  c.ema_decay = 0.0  # 0 disables the EMA copy of G
  # 'bfloat16': mixed precision, bf16 compute with float32 parameters, optimiser and losses.
  c.compute_dtype = 'float32'
  # Updates with a non-finite loss or gradient are skipped; this many in a row stop the run
  # (checked at log steps).
  c.max_nonfinite_steps = 20

  c.data = ml_collections.ConfigDict()
  # 'synthetic' | 'folder' | 'csv' | 'attributes' | 'filename' | 'tfds' | 'array_record'
  c.data.source = 'synthetic'
  c.data.image_size = 128
  c.data.num_classes = 5  # neutral, happy, sad, angry, surprised
  c.data.style = 'anime'
  c.data.intensity_range = (1.0, 1.0)
  c.data.train_dir = ''
  c.data.test_dir = ''
  c.data.random_flip = True
  c.data.num_workers = 2
  c.data.seed = 0
  c.data.update(common.data_sources())  # csv, attributes, filename, tfds, array_record
  c.data.root = ''  # source 'filename'

  c.generator = ml_collections.ConfigDict(dict(conv_dim=64, num_res=6, num_down=2))
  c.discriminator = ml_collections.ConfigDict(dict(conv_dim=64, repeat_num=6))
  c.loss = ml_collections.ConfigDict(dict(lambda_cls=1.0, lambda_rec=10.0, lambda_gp=10.0))
  c.optim = ml_collections.ConfigDict(
      dict(g_lr=1e-4, d_lr=1e-4, b1=0.5, b2=0.999, num_decay_steps=100_000))

  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 10_000
  c.max_checkpoints = 3
  c.num_sample_faces = 8
  # num_identities: score the first N test identities only (0: all 50).
  c.eval = ml_collections.ConfigDict(dict(batch_size=64, num_grid_faces=10, num_identities=0))
  c.eval.update(common.evaluation_suite())

  if variant == 'quick':
    c.num_train_steps = 4500
    c.n_critic = 3
    c.ema_decay = 0.99
    c.data.image_size = 32
    c.data.num_workers = 1
    c.generator.update(conv_dim=16, num_res=3)
    c.discriminator.update(conv_dim=16, repeat_num=5)
    c.optim.update(g_lr=2e-4, d_lr=2e-4, num_decay_steps=2000)
    c.log_every = 100
    c.sample_every = 500
    c.checkpoint_every = 500
  elif variant == 'tiny':
    c.batch_size = 8
    c.num_train_steps = 4
    c.n_critic = 2
    c.data.image_size = 16
    c.data.num_workers = 0
    c.generator.update(conv_dim=4, num_res=1)
    c.discriminator.update(conv_dim=4, repeat_num=4)
    c.optim.num_decay_steps = 2
    c.log_every = 2
    c.sample_every = 4
    c.checkpoint_every = 2
    c.num_sample_faces = 2
    c.eval.update(batch_size=50, num_grid_faces=2, num_identities=10)
  elif variant:
    raise ValueError(f"unknown variant {variant!r}: use '', 'quick' or 'tiny'.")
  return c
