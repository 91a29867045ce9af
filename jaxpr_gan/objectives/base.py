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
"""
from typing import Any

import jax.numpy as jnp

Params = Any


def to_float(images: jnp.ndarray) -> jnp.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


class Objective:
  """Defaults: the batch is labelled faces, and there is no extra state."""
  family: str = 'conditional'
  batch_keys: tuple[str, ...] = ('image', 'label')

  def init_aux(self, image_size: int) -> Any:
    del image_size
    return {}

  def d_inputs(self, aux, g_params: Params, batch: dict[str, jnp.ndarray], rng):
    del g_params, rng
    return batch, aux

  def g_inputs(self, aux, batch: dict[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
    del aux
    return batch

  def pretrained_aux(self, aux) -> tuple[Any, dict]:
    return aux, {}
