"""DCAM-GAN (Rao et al.): decoder control and attention mask for anime expressions.

StarGAN's discriminator and WGAN-GP/classification losses; a generator of a mapping network F
(9 dense layers), an expression transformation network whose decoder takes the control k = F(c)
through AdaIN after every convolution but the last, and an attention-mask network:
G(x, c) = M * G_trans(x, F(c)) + (1 - M) * x. Identity is kept by a contextual loss on VGG19
features of G(x, c) and x (lambda_cx 0.1), not by reconstruction.

Variants (`--config configs/dcam.py:VARIANT`):
  ""      the paper: 128 px, 4 expressions (its Danbooru set), batch 16, Adam 1e-4 (0.5, 0.999),
          200k iterations, constant for 100k then decayed to 0 in steps every 1000,
          lambda_cx 0.1, lambda_cls 1, lambda_gp 10; ImageNet VGG19 weights from
          --config.loss.vgg19_weights (a Keras .h5 or a torchvision .pth; nothing downloads).
  "quick" the embedded benchmark, comparable with configs/stargan.py:quick (32 px, 5 expressions,
          16 filters, G_trans with 1 + 2 bottlenecks, G_att with 3, n_critic 3, lr 2e-4, EMA,
          4500 steps); the contextual loss on relu2_2 and relu3_2 of a VGG19 with fixed random
          weights ('vgg19_random'), because the synthetic benchmark must run without files.
  "tiny"  for tests: 16 px, 4 filters.
  Modifiers (the paper's Table 1), alone or after a base with "+", e.g. "quick+no_cl":
  "stargan_dc"  StarGAN + decoder control: F and the AdaIN decoder, no mask, no contextual
                loss, StarGAN's reconstruction loss (lambda_rec 10).
  "stargan_am"  StarGAN + attention mask: StarGAN's generator (label tiled onto the input) as
                G_trans, the mask, StarGAN's reconstruction loss, no contextual loss.
  "no_cl"       DCAM-GAN without the contextual loss (and, as eq. 14, no reconstruction).
  The baseline row, StarGAN, is configs/stargan.py.

Run:
  python train.py --config configs/dcam.py:quick --workdir workdirs/dcam_quick
  python eval.py  --workdir workdirs/dcam_quick
  python train.py --config configs/dcam.py --workdir workdirs/dcam \
    --config.data.source=folder --config.data.train_dir=/data/anime/train \
    --config.data.test_dir=/data/anime/test \
    --config.loss.vgg19_weights=/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5
"""

import ml_collections

from configs import stargan
from configs import variants

PAPER = {
  'data.num_classes': 4,  # angry, sad, smile, surprised in the paper
  'optim.decay_every': 1000,
}
QUICK = {
  'generator.num_enc_res': 1,
  'generator.num_dec_res': 2,
  'generator.num_mask_res': 3,
  'loss.cx_layers': ('relu2_2', 'relu3_2'),
  'loss.cx_network': 'vgg19_random',
}
TINY = {
  'generator.num_enc_res': 1,
  'generator.num_dec_res': 1,
  'generator.num_mask_res': 1,
  'generator.mapping_dim': 8,
  'generator.control_dim': 8,
  'loss.cx_layers': ('relu1_2', 'relu2_2'),
  'loss.cx_network': 'vgg19_random',
}
BASES = {'': PAPER, 'quick': QUICK, 'tiny': TINY}
WITH_RECONSTRUCTION = {'loss.lambda_cx': 0.0, 'loss.lambda_rec': 10.0}
MODIFIERS = {
  'stargan_dc': {'generator.attention_mask': False, **WITH_RECONSTRUCTION},
  'stargan_am': {'generator.decoder_control': False, **WITH_RECONSTRUCTION},
  'no_cl': {'loss.lambda_cx': 0.0},
}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  base, modifiers = variants.parse(variant, MODIFIERS)
  c = stargan.get_config(base, model='dcam')  # StarGAN's sizes, data, schedule and logging
  c.generator = ml_collections.ConfigDict(
    dict(
      conv_dim=c.generator.conv_dim,
      num_down=2,
      num_enc_res=3,
      num_dec_res=3,
      num_mask_res=6,
      # F: 9 dense layers, 512 wide; the paper leaves the control size N open (StarGAN v2's 64).
      mapping_dim=512,
      mapping_layers=9,
      control_dim=64,
      decoder_control=True,
      attention_mask=True,
    )
  )
  c.loss = ml_collections.ConfigDict(
    dict(
      adversarial='wgan_gp',
      lambda_cls=1.0,
      lambda_gp=10.0,
      lambda_r1=0.0,
      r1_every=1,
      lambda_rec=0.0,
      lambda_cx=0.1,
      # Mechrez et al.'s layers; 'vgg19' reads vgg19_weights, 'vgg19_random' needs no file.
      cx_layers=('relu3_2', 'relu4_2'),
      cx_bandwidth=0.5,
      cx_network='vgg19',
      vgg19_weights='',
    )
  )
  return variants.apply(c, BASES[base], *(MODIFIERS[m] for m in modifiers))
