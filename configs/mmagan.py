"""MMA-GAN (Liu et al.) on the synthetic expression faces: multi-scale mixed attention residual
modules, the global residual connection (GRC), and a continuous expression intensity rho.

The paper trains on AffectNet at 128 px and gives neither layer sizes nor loss weights nor
optimiser settings; where it is silent these are StarGAN's (its baseline, Table 1): 6 modules,
64 filters, batch 16, n_critic 5, Adam 1e-4 (0.5, 0.999), lambda_cls 1, lambda_rec 10, gp 10,
and unit weights for the code (info) and intensity losses.

Variants (`--config configs/mmagan.py:VARIANT`):
  ""      paper settings: 128 px, 7 expressions (AffectNet's basic ones without contempt),
          6 MMARMs, 200k iterations, linear decay over the last 100k.
  "quick" the embedded default size (configs/stargan.py:quick): 32 px, 5 expressions, 16 filters,
          3 modules, n_critic 3, lr 2e-4, EMA of G, 4500 steps.
  "tiny"  for tests: 16 px, 4 filters, one module.
  Modifiers (paper Sec. IV.C ablations), alone or after a base with "+", e.g. "quick+no_mmar":
  "no_mmar"  StarGAN's residual blocks instead of the MMARMs ("w/o MMAR").
  "no_grc"   without the global residual connection, G = tanh(...) ("w/o GRC").
  "no_both"  both removed ("w/o MMAR & GRC"): StarGAN's generator with the intensity objective.

Run:
  python train.py --config configs/mmagan.py:quick --workdir workdirs/mmagan_quick
  python eval.py  --workdir workdirs/mmagan_quick
eval.py also reports how the output follows rho (`intensity` in metrics.json).
"""

from configs import stargan
from configs import variants

# StarGAN's generator with MMARMs (3 scales: depth 2; CBAM reduction 16) and the GRC ("+ x").
PRESET = {
  'generator.block': 'mmarm',
  'generator.block_args': {'depth': 2, 'reduction': 16},
  'generator.image_residual': True,
}
PAPER = {'data.num_classes': 7}
RESIDUAL_BLOCKS = {'generator.block': 'residual', 'generator.block_args': {}}
NO_GRC = {'generator.image_residual': False}
MODIFIERS = {'no_mmar': RESIDUAL_BLOCKS, 'no_grc': NO_GRC, 'no_both': {**RESIDUAL_BLOCKS, **NO_GRC}}


def get_config(variant: str = ''):
  base, modifiers = variants.parse(variant, MODIFIERS)
  c = stargan.get_config(base, model='mmagan')
  # The code (info) and intensity losses of eq. 5-8; rec_code 'label': StarGAN's reconstruction.
  c.loss.update(lambda_info_g=1.0, lambda_info_d=1.0, lambda_rho=1.0, rec_code='d_cor')
  return variants.apply(c, PRESET, PAPER if not base else {}, *(MODIFIERS[m] for m in modifiers))
