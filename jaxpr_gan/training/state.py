"""The training state: one pytree of parameters, optimiser states, EMA, extra state and RNG."""

from collections.abc import Callable
import functools
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


SCHEDULES = ('linear', 'constant', 'cosine')
OPTIMIZERS = ('adam', 'adamw')


def schedule(config: ml_collections.ConfigDict) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """-> lr(base_lr, iteration) of `config.optim.schedule`, counted in iterations (shared by G and
  D, as StarGAN's code decays both by the iteration):
    'linear'   constant, then linear to 0 over the last num_decay_steps, every decay_every
               (StarGAN; DCAM-GAN's staircase);
    'constant' base_lr;
    'cosine'   optax's cosine decay over the run to end_lr_fraction * base_lr.
  With warmup_steps > 0 the lr first rises linearly from 0 over that many iterations
  (optax.linear_schedule, a factor on the above)."""
  optim, num_steps = config.optim, config.num_train_steps
  if optim.schedule == 'linear':
    shape = functools.partial(
      learning_rate,
      num_steps=num_steps,
      num_decay_steps=optim.num_decay_steps,
      decay_every=optim.decay_every,
    )
  elif optim.schedule == 'constant':
    shape = lambda base, step: jnp.asarray(base, jnp.float32)
  else:
    cosine = optax.cosine_decay_schedule(1.0, num_steps, alpha=optim.end_lr_fraction)
    shape = lambda base, step: base * cosine(step)
  if optim.warmup_steps <= 0:
    return shape
  warmup = optax.linear_schedule(0.0, 1.0, optim.warmup_steps)
  return lambda base, step: shape(base, step) * warmup(step)


def optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """`config.optim.name` without its learning rate, which the step applies from the iteration
  count shared by G and D (`schedule`): 'adam' with PyTorch Adam's weight_decay, an L2 term added
  to the gradient before Adam (2CET-GAN); 'adamw', the decay decoupled and scaled by the lr as in
  optax.adamw."""
  optim = config.optim
  adam = optax.scale_by_adam(b1=optim.b1, b2=optim.b2, eps=1e-8)
  decay = optim.weight_decay
  if not decay:
    return adam
  if optim.name == 'adamw':
    return optax.chain(adam, optax.add_decayed_weights(decay))
  return optax.chain(optax.add_decayed_weights(decay), adam)


def ema_update(decay: float, ema, params):
  """optax's moment update: decay * ema + (1 - decay) * params."""
  return optax.tree_utils.tree_update_moment(params, ema, decay, 1)


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


def init_seeds(objective, config: ml_collections.ConfigDict, seeds) -> TrainState:
  """Fresh states of `config` with config.seed = each of `seeds`, stacked on a leading axis."""
  states = []
  for seed in seeds:
    one = ml_collections.ConfigDict(config.to_dict())
    one.seed = int(seed)
    states.append(init_state(objective, one))
  return stack_seeds(states)


def stack_seeds(trees):
  """Pytrees of one structure (seeds' states, their parts) stacked on a new leading seed axis."""
  return jax.tree.map(lambda *x: jnp.stack(x), *trees)


def seed_slice(state: TrainState, i: int) -> TrainState:
  """Seed `i` of a state with a seed axis."""
  return jax.tree.map(lambda x: x[i], state)


def generator_params(state: TrainState):
  """The generator used for samples and evaluation: the EMA copy when there is one."""
  return state.ema_params if jax.tree.leaves(state.ema_params) else state.params['g']
