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
  python eval.py  --config configs/mmagan.py:quick --workdir workdirs/mmagan_quick
eval.py also reports how the output follows rho (`intensity` in metrics.json).
"""
import ml_collections

from configs import stargan
from configs import variants

MODIFIERS = ('no_mmar', 'no_grc', 'no_both')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  base, modifiers = variants.parse(variant, MODIFIERS)
  c = stargan.get_config(base)
  c.model = 'mmagan'
  if not base:
    c.data.num_classes = 7
  c.generator = ml_collections.ConfigDict(dict(
      conv_dim=c.generator.conv_dim, num_down=2, num_blocks=c.generator.num_res, block='mmarm',
      image_residual=True))
  c.loss.update(lambda_info_g=1.0, lambda_info_d=1.0, lambda_rho=1.0, rec_code='d_cor')
  c.eval.intensities = (0.0, 0.25, 0.5, 0.75, 1.0)
  c.eval.intensity_grid = 21  # candidate truths at intensities 0, 0.05, ..., 1
  for m in modifiers:
    if m in ('no_mmar', 'no_both'):
      c.generator.block = 'residual'
    if m in ('no_grc', 'no_both'):
      c.generator.image_residual = False
  return c
