"""What the train step asks of every objective, with the defaults most families keep.

An objective holds a family's networks and loss weights and is used through pure methods:
  init(rng, images) -> {'g': ..., 'd': ...}    parameters (G and D sides, each any pytree)
  init_aux(image_size) -> pytree               extra training state (e.g. CycleGAN's image pools)
  d_inputs(aux, g_params, batch, rng) -> (batch, aux)   prepares D's batch, updates that state
  g_inputs(aux, batch) -> batch                prepares G's batch (e.g. adds a loss network)
  pretrained_aux(aux) -> (aux, record)         a fresh run's aux with weights read from files,
                                               and what was read, for the run's record
  d_loss(d_params, g_params, batch, rng, step) -> (loss, metrics)
  g_loss(g_params, d_params, batch, rng, step) -> (loss, metrics)
  sample_cells(g_params, batch) -> (rows, cols, H, W, 3) float images for sample pictures
`family` names the evaluation protocol: 'conditional', 'two_domain' or 'reference'.

Objectives are frozen keyword-only dataclasses whose loss fields are the keys of
`config.loss` (the registry builds them with `**config.loss`); the adversarial fields below are
shared by every family (`objectives.adversarial`).
"""

import dataclasses
from typing import Any

from jaxpr_gan.objectives import adversarial as adversarial_lib

Params = Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class Objective:
  """Defaults: the batch is labelled faces, and there is no extra state."""

  adversarial: str = 'wgan_gp'  # a kind of objectives.adversarial
  lambda_gp: float = 10.0  # WGAN-GP's gradient penalty ('wgan_gp' only)
  lambda_r1: float = 0.0  # R1 penalty on real images (any kind); 0: none
  r1_every: int = 1  # lazy R1: every k-th D step, weighted k times

  family = 'conditional'
  batch_keys = ('image', 'label')

  @property
  def adv(self) -> adversarial_lib.Adversarial:
    return adversarial_lib.Adversarial(
      self.adversarial, self.lambda_gp, self.lambda_r1, self.r1_every
    )

  def init_aux(self, image_size: int) -> Any:
    del image_size
    return {}

  def d_inputs(self, aux, g_params: Params, batch, rng):
    del g_params, rng
    return batch, aux

  def g_inputs(self, aux, batch):
    del aux
    return batch

  def pretrained_aux(self, aux) -> tuple[Any, dict]:
    return aux, {}
