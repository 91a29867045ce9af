"""The train steps: pure (state, batch, rng) -> (state, metrics), compiled once over a mesh.

D and G steps each take one optimiser update (skipped when not finite); `compile_steps` jits
them with the batch sharded over the mesh's 'data' axis, the state replicated and donated.
"""

from collections.abc import Callable, Sequence
import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import AxisType
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import optax

from jaxpr_gan.nn import conv
from jaxpr_gan.objectives import weights
from jaxpr_gan.training import state as state_lib

Metrics = dict[str, jax.Array]
StepFn = Callable[[Any, dict[str, jax.Array], jax.Array], tuple[Any, Metrics]]


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D data-parallel mesh over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), ('data',), axis_types=(AxisType.Auto,), devices=devices)


def platform_of(mesh: jax.sharding.Mesh) -> str:
  """'cpu', 'gpu' or 'tpu': the platform of the mesh's devices."""
  return mesh.devices.flat[0].platform


def _apply(tx, params, opt_state, grads, lr):
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates)), opt_state


def _all_finite(loss, grads) -> jax.Array:
  return jnp.isfinite(loss) & jnp.all(
    jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)])
  )


def _guarded(
  finite: jax.Array,
  new: state_lib.TrainState,
  old: state_lib.TrainState,
  net: str,
  metrics: Metrics,
):
  """The update if `finite`, else `old` with only the iteration count advanced.

  Counts the skipped update in the metrics and in the state's run of consecutive skips of `net`.
  """
  keep = lambda n, o: jnp.where(finite, n, o)
  run = jnp.where(finite, 0, old.nonfinite_run[net] + 1)
  state = new.replace(
    params=jax.tree.map(keep, new.params, old.params),
    opt_state=jax.tree.map(keep, new.opt_state, old.opt_state),
    ema_params=jax.tree.map(keep, new.ema_params, old.ema_params),
    aux=jax.tree.map(keep, new.aux, old.aux),
    nonfinite_run=dict(old.nonfinite_run, **{net: run}),
  )
  skipped = (1 - finite.astype(jnp.int32)).astype(jnp.float32)
  return state, dict(metrics, **{f'{net.upper()}/nonfinite_steps': skipped})


# What the compiled steps read from a config besides the objective and the values: two configs
# equal in these keys (and in their objectives' structure) share one program.
_SETTINGS = (
  'num_train_steps',
  'ema_decay',
  'conv_impl',
  'optim.name',
  'optim.b1',
  'optim.b2',
  'optim.weight_decay',
  'optim.schedule',
  'optim.num_decay_steps',
  'optim.decay_every',
  'optim.warmup_steps',
  'optim.end_lr_fraction',
  'optim.accumulate_steps',
)


def settings(config: ml_collections.ConfigDict) -> ml_collections.FrozenConfigDict:
  """The keys of `config` that the compiled steps read (hashable: a key of the program cache)."""
  out = ml_collections.ConfigDict({'optim': {}})
  for key in _SETTINGS:
    group, _, leaf = key.rpartition('.')
    (out[group] if group else out)[leaf] = (config[group] if group else config)[leaf]
  return ml_collections.FrozenConfigDict(out)


def values(objective, config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """The steps' values: loss weights (objectives.weights) and learning rates, weakly typed."""
  return {
    'loss': weights.split(objective)[1],
    'd_lr': jnp.asarray(float(config.optim.d_lr)),
    'g_lr': jnp.asarray(float(config.optim.g_lr)),
  }


def _micro_batches(batch: dict, keys, k: int) -> dict:
  """The data keys of `batch` as k micro-batches along a new leading axis; micro-batch j holds
  examples j, j + k, ..., so each device keeps its own rows."""
  split = lambda x: jnp.moveaxis(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 1, 0)
  return {key: split(batch[key]) for key in keys}


def _value_and_grad(loss_fn, params, other, batch, rng, step, data_keys, k: int):
  """((loss, metrics), grads) of D's or G's `loss_fn(params, other, batch, rng, step)`, or with
  `k` > 1 their means over k micro-batches of the data keys (one lax.scan: the activations of one
  at a time), micro-batch j drawing with fold_in(rng, j). Other keys (a loss network) go whole."""
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if k == 1:
    return grad_fn(params, other, batch, rng, step)
  micro = _micro_batches(batch, data_keys, k)
  whole = {key: v for key, v in batch.items() if key not in data_keys}

  def add(total, j):
    part = {key: v[j] for key, v in micro.items()}
    out = grad_fn(params, other, dict(whole, **part), jax.random.fold_in(rng, j), step)
    return jax.tree.map(jnp.add, total, out), None

  first = dict(whole, **{key: v[0] for key, v in micro.items()})
  shape = jax.eval_shape(grad_fn, params, other, first, rng, step)
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shape)
  total, _ = jax.lax.scan(add, zeros, jnp.arange(k))
  return jax.tree.map(lambda t: t / k, total)


def _step_fns(structural, config, platforms):
  """(state, batch, rng, values) -> (state, metrics) for D and G, the objective's weights and the
  learning rates read from `values`."""
  tx = state_lib.optimizer(config)
  schedule = state_lib.schedule(config)
  k = config.optim.accumulate_steps
  data_keys = structural.batch_keys

  def d_step(state: state_lib.TrainState, batch, rng, values):
    objective = weights.bind(structural, values['loss'])
    batch, aux = objective.d_inputs(state.aux, state.params['g'], batch, jax.random.fold_in(rng, 2))
    (loss, metrics), grads = _value_and_grad(
      objective.d_loss, state.params['d'], state.params['g'], batch, jax.random.fold_in(rng, 0),
      state.step, data_keys, k,
    )  # fmt: skip
    lr = schedule(values['d_lr'], state.step)
    d, d_opt = _apply(tx, state.params['d'], state.opt_state['d'], grads, lr)
    metrics = dict(metrics, **{'D/lr': lr, 'D/grad_norm': optax.global_norm(grads)})
    new = state.replace(
      step=state.step + 1,
      params=dict(state.params, d=d),
      opt_state=dict(state.opt_state, d=d_opt),
      aux=aux,
    )
    return _guarded(_all_finite(loss, grads), new, state, 'd', metrics)

  def g_step(state: state_lib.TrainState, batch, rng, values):
    # Runs after the d_step of the same iteration, which already advanced state.step.
    objective = weights.bind(structural, values['loss'])
    batch = objective.g_inputs(state.aux, batch)
    (loss, metrics), grads = _value_and_grad(
      objective.g_loss, state.params['g'], state.params['d'], batch, jax.random.fold_in(rng, 1),
      state.step - 1, data_keys, k,
    )  # fmt: skip
    lr = schedule(values['g_lr'], state.step - 1)
    g, g_opt = _apply(tx, state.params['g'], state.opt_state['g'], grads, lr)
    ema = state.ema_params
    if config.ema_decay > 0:
      ema = state_lib.ema_update(config.ema_decay, ema, g)
    metrics = dict(metrics, **{'G/lr': lr, 'G/grad_norm': optax.global_norm(grads)})
    new = state.replace(
      params=dict(state.params, g=g), opt_state=dict(state.opt_state, g=g_opt), ema_params=ema
    )
    return _guarded(_all_finite(loss, grads), new, state, 'g', metrics)

  return (
    conv.traced_with(d_step, config.conv_impl, platforms),
    conv.traced_with(g_step, config.conv_impl, platforms),
  )


def make_step_fns(
  objective, config: ml_collections.ConfigDict, platforms: Sequence[str] | None = None
) -> tuple[StepFn, StepFn]:
  """Pure (state, batch, rng) -> (state, metrics) for the critic and the generator update, their
  convolutions those of `config.conv_impl` for a program lowered for `platforms` (default: the
  default backend), the config's loss weights and learning rates in them as constants
  (`compile_steps` passes them as values instead).

  An update whose loss or gradients are not finite is skipped (parameters, optimiser states and
  EMA unchanged) and counted; the loop stops after `config.max_nonfinite_steps` in a row. With
  `optim.accumulate_steps` = k, an update is the mean gradient of k micro-batches of the batch:
  one iteration, one step of the count, of the schedule and of n_critic, one EMA update, one
  finiteness check (of the mean), all as for one update on the whole batch.
  """
  structural, _ = weights.split(objective)
  d_step, g_step = _step_fns(structural, settings(config), platforms)
  fixed = values(objective, config)
  return (
    lambda state, batch, rng: d_step(state, batch, rng, fixed),
    lambda state, batch, rng: g_step(state, batch, rng, fixed),
  )


# XLA:CPU's default YNNPACK fusion types (jax 0.10) less INDIVIDUAL_CONVOLUTION; an option passed
# to a compile can only list the types, not remove one.
_YNN_FUSIONS_WITHOUT_CONVOLUTION = 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'


def compiler_options(mesh) -> dict:
  """XLA options for the train steps (docs/benchmarks.md). On CPU: no scheduling for
  concurrent thunks, whose convolutions then share the cores and each run slower (StarGAN's G
  forward and backward twice, at 128 px and batch 16 on 2 cores: 17.2 s against 22.1 s); and
  convolutions by Eigen rather than YNNPACK, 1.5 to 6 times faster on most of StarGAN's layers
  (its D and G steps: 10 to 15% faster)."""
  if platform_of(mesh) == 'cpu':
    return {
      'xla_cpu_enable_concurrency_optimized_scheduler': False,
      'xla_cpu_experimental_ynn_fusion_type': _YNN_FUSIONS_WITHOUT_CONVOLUTION,
    }
  return {}


@functools.lru_cache(maxsize=16)
def _jitted_steps(structural, step_settings, mesh, batch_keys, num_seeds: int):
  """The jitted 4-argument steps, one pair per structure, settings, mesh and seed count in this
  process; with `num_seeds` > 0 vmapped over a leading seed axis of the state and the RNG, the
  batch and the values shared."""
  replicated = NamedSharding(mesh, P())
  batch_sharding = {k: NamedSharding(mesh, P('data')) for k in batch_keys}
  jit = functools.partial(
    jax.jit,
    in_shardings=(replicated, batch_sharding, replicated, replicated),
    out_shardings=(replicated, replicated),
    donate_argnums=(0,),
    compiler_options=compiler_options(mesh),
  )
  fns = _step_fns(structural, step_settings, (platform_of(mesh),))
  if num_seeds:
    fns = tuple(jax.vmap(f, in_axes=(0, None, 0, None)) for f in fns)
  return tuple(map(jit, fns))


def step_rng(state: state_lib.TrainState, step: int) -> jax.Array:
  """The key of iteration `step`, folded into the run's key (each seed's, for a seed axis)."""
  if state.rng.ndim == 2:
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(state.rng, step)
  return jax.random.fold_in(state.rng, step)


@dataclasses.dataclass(frozen=True)
class BoundStep:
  """A compiled step with its values bound: called, and lowered, as (state, batch, rng)."""

  jitted: Any
  values: dict

  def __call__(self, state, batch, rng):
    return self.jitted(state, batch, rng, self.values)

  def lower(self, state, batch, rng):
    return self.jitted.lower(state, batch, rng, self.values)

  def trace(self, state, batch, rng):
    return self.jitted.trace(state, batch, rng, self.values)


def compile_steps(objective, config, mesh, state_template, num_seeds: int = 0):
  """jit the steps once: batch sharded on 'data', state replicated and donated. The loss weights
  and learning rates are arguments (`values`), so runs in this process that differ only in them
  (a sweep's points) share the compiled programs. `num_seeds` > 0: the state (`state_template`
  included) has a leading axis of that many seeds, trained on the same batches."""
  replicated = NamedSharding(mesh, P())
  state_sharding = jax.tree.map(lambda _: replicated, state_template)
  structural, _ = weights.split(objective)
  d_step, g_step = _jitted_steps(
    structural, settings(config), mesh, tuple(objective.batch_keys), num_seeds
  )
  bound = jax.jit(functools.partial(values, objective, config), out_shardings=replicated)()
  batch_sharding = {k: NamedSharding(mesh, P('data')) for k in objective.batch_keys}
  return BoundStep(d_step, bound), BoundStep(g_step, bound), state_sharding, batch_sharding
