"""The training state: one pytree of parameters, optimiser states, EMA, extra state and RNG."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # completed iterations (one D update each, a G update every n_critic)
  params: dict[str, Any]  # {'g': ..., 'd': ...}
  opt_state: dict[str, Any]
  ema_params: Any  # EMA of params['g'], or {} when config.ema_decay == 0
  aux: Any  # the objective's extra state (e.g. CycleGAN's image pools), {} for most
  rng: jax.Array  # raw uint32 key of the run; step keys are folded in from it
  nonfinite_run: dict[str, jax.Array]  # per network: consecutive updates skipped as non-finite


def learning_rate(
  base_lr: float, step: jax.Array, num_steps: int, num_decay_steps: int, decay_every: int = 1
):
  """Constant, then linear decay to 0 over the last `num_decay_steps` iterations (StarGAN),
  lowered every `decay_every` iterations (DCAM-GAN's 1000: a staircase)."""
  if num_decay_steps <= 0:
    return jnp.asarray(base_lr, jnp.float32)
  start = num_steps - num_decay_steps
  done = (step - start) // decay_every * decay_every
  frac = jnp.clip(done / num_decay_steps, 0.0, 1.0)
  return jnp.asarray(base_lr * (1.0 - frac), jnp.float32)


def optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  # The learning rate is applied in the step, from the iteration count shared by G and D.
  adam = optax.scale_by_adam(b1=config.optim.b1, b2=config.optim.b2, eps=1e-8)
  decay = config.optim.weight_decay
  # PyTorch Adam's weight_decay (2CET-GAN): an L2 term added to the gradient before Adam.
  return optax.chain(optax.add_decayed_weights(decay), adam) if decay else adam


def init_state(objective, config: ml_collections.ConfigDict) -> TrainState:
  """Fresh state; pure, so it can be jitted with output shardings or evaluated abstractly."""
  rng = jax.random.PRNGKey(config.seed)
  init_rng, run_rng = jax.random.split(rng)
  size = config.data.image_size
  params = objective.init(init_rng, jnp.zeros((1, size, size, 3), jnp.uint8))
  tx = optimizer(config)
  ema = jax.tree.map(jnp.copy, params['g']) if config.ema_decay > 0 else {}
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state={'g': tx.init(params['g']), 'd': tx.init(params['d'])},
    ema_params=ema,
    aux=objective.init_aux(size),
    rng=run_rng,
    nonfinite_run={'d': jnp.zeros((), jnp.int32), 'g': jnp.zeros((), jnp.int32)},
  )


def generator_params(state: TrainState):
  """The generator used for samples and evaluation: the EMA copy when there is one."""
  return state.ema_params if jax.tree.leaves(state.ema_params) else state.params['g']
