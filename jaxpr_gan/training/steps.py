"""The train steps: pure (state, batch, rng) -> (state, metrics), compiled once over a mesh.

D and G steps each take one optimiser update (skipped when not finite); `compile_steps` jits
them with the batch sharded over the mesh's 'data' axis, the state replicated and donated.
"""

from collections.abc import Callable, Sequence
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


def make_step_fns(
  objective, config: ml_collections.ConfigDict, platforms: Sequence[str] | None = None
) -> tuple[StepFn, StepFn]:
  """Pure (state, batch, rng) -> (state, metrics) for the critic and the generator update, their
  convolutions those of `config.conv_impl` for a program lowered for `platforms` (default: the
  default backend).

  An update whose loss or gradients are not finite is skipped (parameters, optimiser states and
  EMA unchanged) and counted; the loop stops after `config.max_nonfinite_steps` in a row.
  """
  tx = state_lib.optimizer(config)
  schedule = functools.partial(
    state_lib.learning_rate,
    num_steps=config.num_train_steps,
    num_decay_steps=config.optim.num_decay_steps,
    decay_every=config.optim.decay_every,
  )

  def d_step(state: state_lib.TrainState, batch, rng):
    batch, aux = objective.d_inputs(state.aux, state.params['g'], batch, jax.random.fold_in(rng, 2))
    grad_fn = jax.value_and_grad(objective.d_loss, has_aux=True)
    (loss, metrics), grads = grad_fn(
      state.params['d'], state.params['g'], batch, jax.random.fold_in(rng, 0), state.step
    )
    lr = schedule(config.optim.d_lr, state.step)
    d, d_opt = _apply(tx, state.params['d'], state.opt_state['d'], grads, lr)
    metrics = dict(metrics, **{'D/lr': lr, 'D/grad_norm': optax.global_norm(grads)})
    new = state.replace(
      step=state.step + 1,
      params=dict(state.params, d=d),
      opt_state=dict(state.opt_state, d=d_opt),
      aux=aux,
    )
    return _guarded(_all_finite(loss, grads), new, state, 'd', metrics)

  def g_step(state: state_lib.TrainState, batch, rng):
    # Runs after the d_step of the same iteration, which already advanced state.step.
    batch = objective.g_inputs(state.aux, batch)
    grad_fn = jax.value_and_grad(objective.g_loss, has_aux=True)
    (loss, metrics), grads = grad_fn(
      state.params['g'], state.params['d'], batch, jax.random.fold_in(rng, 1), state.step - 1
    )
    lr = schedule(config.optim.g_lr, state.step - 1)
    g, g_opt = _apply(tx, state.params['g'], state.opt_state['g'], grads, lr)
    ema = state.ema_params
    if config.ema_decay > 0:
      ema = jax.tree.map(lambda e, p: config.ema_decay * e + (1.0 - config.ema_decay) * p, ema, g)
    metrics = dict(metrics, **{'G/lr': lr, 'G/grad_norm': optax.global_norm(grads)})
    new = state.replace(
      params=dict(state.params, g=g), opt_state=dict(state.opt_state, g=g_opt), ema_params=ema
    )
    return _guarded(_all_finite(loss, grads), new, state, 'g', metrics)

  return (
    conv.traced_with(d_step, config.conv_impl, platforms),
    conv.traced_with(g_step, config.conv_impl, platforms),
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


def compile_steps(objective, config, mesh, state_template):
  """jit the steps once: batch sharded on 'data', state replicated and donated."""
  replicated = NamedSharding(mesh, P())
  data = NamedSharding(mesh, P('data'))
  state_sharding = jax.tree.map(lambda _: replicated, state_template)
  batch_sharding = {k: data for k in objective.batch_keys}
  d_step, g_step = make_step_fns(objective, config, (platform_of(mesh),))
  jit = functools.partial(
    jax.jit,
    in_shardings=(state_sharding, batch_sharding, replicated),
    out_shardings=(state_sharding, replicated),
    donate_argnums=(0,),
    compiler_options=compiler_options(mesh),
  )
  return jit(d_step), jit(g_step), state_sharding, batch_sharding
