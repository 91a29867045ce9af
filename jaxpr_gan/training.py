"""Training: one state pytree, pure `d_step`/`g_step` compiled once over a device mesh, the loop.

The loop only dispatches: batches go onto the mesh, steps run asynchronously, and metrics are
fetched from the devices at log steps alone.
"""
import functools
import json
import os
import signal
import threading
from typing import Any, Callable

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import flax
import jax
import jax.numpy as jnp
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import optax

from input_pipeline import pipeline
from input_pipeline import sources
from input_pipeline import synthetic
from jaxpr_gan import checkpointing
from jaxpr_gan import config_validation
from jaxpr_gan import objectives
from jaxpr_gan import visualization

Metrics = dict[str, jax.Array]
StepFn = Callable[[Any, dict[str, jax.Array], jax.Array], tuple[Any, Metrics]]


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # completed iterations (one D update each, a G update every n_critic)
  params: dict[str, Any]  # {'g': ..., 'd': ...}
  opt_state: dict[str, Any]
  ema_params: Any  # EMA of params['g'], or {} when config.ema_decay == 0
  aux: Any  # the objective's extra state (e.g. CycleGAN's image pools), {} for most
  rng: jax.Array  # raw uint32 key of the run; step keys are folded in from it
  nonfinite_run: dict[str, jax.Array]  # per network: consecutive updates skipped as non-finite


def learning_rate(base_lr: float, step: jax.Array, num_steps: int, num_decay_steps: int,
                  decay_every: int = 1):
  """Constant, then linear decay to 0 over the last `num_decay_steps` iterations (StarGAN),
  lowered every `decay_every` iterations (DCAM-GAN's 1000: a staircase)."""
  if num_decay_steps <= 0:
    return jnp.asarray(base_lr, jnp.float32)
  start = num_steps - num_decay_steps
  done = (step - start) // decay_every * decay_every
  frac = jnp.clip(done / num_decay_steps, 0.0, 1.0)
  return jnp.asarray(base_lr * (1.0 - frac), jnp.float32)


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D data-parallel mesh over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), ('data',), axis_types=(AxisType.Auto,), devices=devices)


def _optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  # The learning rate is applied in the step, from the iteration count shared by G and D.
  adam = optax.scale_by_adam(b1=config.optim.b1, b2=config.optim.b2, eps=1e-8)
  decay = config.optim.get('weight_decay', 0.0)
  # PyTorch Adam's weight_decay (2CET-GAN): an L2 term added to the gradient before Adam.
  return optax.chain(optax.add_decayed_weights(decay), adam) if decay else adam


def init_state(objective, config: ml_collections.ConfigDict) -> TrainState:
  """Fresh state; pure, so it can be jitted with output shardings or evaluated abstractly."""
  rng = jax.random.PRNGKey(config.seed)
  init_rng, run_rng = jax.random.split(rng)
  size = config.data.image_size
  params = objective.init(init_rng, jnp.zeros((1, size, size, 3), jnp.uint8))
  tx = _optimizer(config)
  ema = jax.tree.map(jnp.copy, params['g']) if config.ema_decay > 0 else {}
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state={'g': tx.init(params['g']), 'd': tx.init(params['d'])},
                    ema_params=ema, aux=objective.init_aux(size), rng=run_rng,
                    nonfinite_run={'d': jnp.zeros((), jnp.int32), 'g': jnp.zeros((), jnp.int32)})


def _apply(tx, params, opt_state, grads, lr):
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates)), opt_state


def _all_finite(loss, grads) -> jax.Array:
  return jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(g))
                                                 for g in jax.tree.leaves(grads)]))


def _guarded(finite: jax.Array, new: TrainState, old: TrainState, net: str, metrics):
  """The update if `finite`, else `old` with only the iteration count advanced.

  Counts the skipped update in the metrics and in the state's run of consecutive skips of `net`.
  """
  keep = lambda n, o: jnp.where(finite, n, o)
  run = jnp.where(finite, 0, old.nonfinite_run[net] + 1)
  state = new.replace(params=jax.tree.map(keep, new.params, old.params),
                      opt_state=jax.tree.map(keep, new.opt_state, old.opt_state),
                      ema_params=jax.tree.map(keep, new.ema_params, old.ema_params),
                      aux=jax.tree.map(keep, new.aux, old.aux),
                      nonfinite_run=dict(old.nonfinite_run, **{net: run}))
  skipped = (1 - finite.astype(jnp.int32)).astype(jnp.float32)
  return state, dict(metrics, **{f'{net.upper()}/nonfinite_steps': skipped})


def make_step_fns(objective, config: ml_collections.ConfigDict) -> tuple[StepFn, StepFn]:
  """Pure (state, batch, rng) -> (state, metrics) for the critic and the generator update.

  An update whose loss or gradients are not finite is skipped (parameters, optimiser states and
  EMA unchanged) and counted; the loop stops after `config.max_nonfinite_steps` in a row.
  """
  tx = _optimizer(config)
  schedule = functools.partial(learning_rate, num_steps=config.num_train_steps,
                               num_decay_steps=config.optim.num_decay_steps,
                               decay_every=config.optim.get('decay_every', 1))

  def d_step(state: TrainState, batch, rng):
    batch, aux = objective.d_inputs(state.aux, state.params['g'], batch,
                                    jax.random.fold_in(rng, 2))
    grad_fn = jax.value_and_grad(objective.d_loss, has_aux=True)
    (loss, metrics), grads = grad_fn(state.params['d'], state.params['g'], batch,
                                     jax.random.fold_in(rng, 0), state.step)
    lr = schedule(config.optim.d_lr, state.step)
    d, d_opt = _apply(tx, state.params['d'], state.opt_state['d'], grads, lr)
    metrics = dict(metrics, **{'D/lr': lr, 'D/grad_norm': optax.global_norm(grads)})
    new = state.replace(step=state.step + 1, params=dict(state.params, d=d),
                        opt_state=dict(state.opt_state, d=d_opt), aux=aux)
    return _guarded(_all_finite(loss, grads), new, state, 'd', metrics)

  def g_step(state: TrainState, batch, rng):
    # Runs after the d_step of the same iteration, which already advanced state.step.
    batch = objective.g_inputs(state.aux, batch)
    grad_fn = jax.value_and_grad(objective.g_loss, has_aux=True)
    (loss, metrics), grads = grad_fn(state.params['g'], state.params['d'], batch,
                                     jax.random.fold_in(rng, 1), state.step - 1)
    lr = schedule(config.optim.g_lr, state.step - 1)
    g, g_opt = _apply(tx, state.params['g'], state.opt_state['g'], grads, lr)
    ema = state.ema_params
    if config.ema_decay > 0:
      ema = jax.tree.map(lambda e, p: config.ema_decay * e + (1.0 - config.ema_decay) * p, ema, g)
    metrics = dict(metrics, **{'G/lr': lr, 'G/grad_norm': optax.global_norm(grads)})
    new = state.replace(params=dict(state.params, g=g), opt_state=dict(state.opt_state, g=g_opt),
                        ema_params=ema)
    return _guarded(_all_finite(loss, grads), new, state, 'g', metrics)

  return d_step, g_step


# XLA:CPU's default YNNPACK fusion types (jax 0.10) less INDIVIDUAL_CONVOLUTION; an option passed
# to a compile can only list the types, not remove one.
_YNN_FUSIONS_WITHOUT_CONVOLUTION = 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'


def compiler_options(mesh) -> dict:
  """XLA options for the train steps (docs/benchmarks.md). On CPU: no scheduling for
  concurrent thunks, whose convolutions then share the cores and each run slower (StarGAN's G
  forward and backward twice, at 128 px and batch 16 on 2 cores: 17.2 s against 22.1 s); and
  convolutions by Eigen rather than YNNPACK, 1.5 to 6 times faster on most of StarGAN's layers
  (its D and G steps: 10 to 15% faster)."""
  if mesh.devices.flat[0].platform == 'cpu':
    return {'xla_cpu_enable_concurrency_optimized_scheduler': False,
            'xla_cpu_experimental_ynn_fusion_type': _YNN_FUSIONS_WITHOUT_CONVOLUTION}
  return {}


def compile_steps(objective, config, mesh, state_template):
  """jit the steps once: batch sharded on 'data', state replicated and donated."""
  replicated = NamedSharding(mesh, P())
  data = NamedSharding(mesh, P('data'))
  state_sharding = jax.tree.map(lambda _: replicated, state_template)
  batch_sharding = {k: data for k in objective.batch_keys}
  d_step, g_step = make_step_fns(objective, config)
  jit = functools.partial(jax.jit, in_shardings=(state_sharding, batch_sharding, replicated),
                          out_shardings=(state_sharding, replicated), donate_argnums=(0,),
                          compiler_options=compiler_options(mesh))
  return jit(d_step), jit(g_step), state_sharding, batch_sharding


def generator_params(state: TrainState):
  """The generator used for samples and evaluation: the EMA copy when there is one."""
  return state.ema_params if jax.tree.leaves(state.ema_params) else state.params['g']


def sample_inputs(config: ml_collections.ConfigDict, test_source, num_faces: int, keys):
  """A fixed batch of test examples for sample grids (synthetic faces: different identities,
  cycling through the expressions), with the fields `keys` (the objective's batch keys)."""
  num_classes = len(test_source.class_names)
  count = min(num_faces, len(test_source))
  if isinstance(test_source, synthetic.SyntheticFaces):  # index = identity * classes + class
    indices = [(k * num_classes + k % num_classes) % len(test_source) for k in range(count)]
  else:
    indices = np.linspace(0, len(test_source) - 1, count).astype(int).tolist()
  to_example = pipeline.ToExample(config.data.image_size)
  examples = [e for e in (to_example.map(test_source[i]) for i in indices) if e['valid']]
  return {k: np.stack([e[k] for e in examples]) for k in keys}


def sample_grid(sample_cells, g_params, batch: dict[str, np.ndarray]) -> np.ndarray:
  """The objective's sample picture as one uint8 grid; `sample_cells` jitted by the caller."""
  return visualization.image_grid(visualization.to_uint8(sample_cells(g_params, batch)))


def _put_batch(batch: dict[str, np.ndarray], batch_sharding) -> dict[str, jax.Array]:
  return {k: jax.make_array_from_process_local_data(batch_sharding[k], batch[k])
          for k in batch_sharding}


@jax.jit
def _accumulate(sums: dict, metrics: Metrics) -> dict:
  """Adds a step's metrics to per-name (sum of finite values, finite count, non-finite count).

  One program per step, on the device: nothing is fetched until a log step.
  """
  for k, v in metrics.items():
    finite = jnp.isfinite(v)
    add = (jnp.where(finite, v, 0.0), finite.astype(jnp.int32), (~finite).astype(jnp.int32))
    sums[k] = tuple(a + b for a, b in zip(sums[k], add)) if k in sums else add
  return sums


def _summarise(sums: dict) -> tuple[dict[str, float], list[str]]:
  """-> (means over finite values, names with non-finite values); `*nonfinite_steps` are sums."""
  means, bad = {}, []
  for k, (total, finite, nonfinite) in jax.device_get(sums).items():
    means[k] = float(total) if k.endswith('nonfinite_steps') else float(total) / max(int(finite), 1)
    if nonfinite:
      bad.append(k)
  return means, sorted(bad)


class NonFiniteError(FloatingPointError):
  """Too many consecutive updates with a non-finite loss or gradient."""


def _check_nonfinite(done: int, runs: dict[str, int], bad: list[str], limit: int,
                     last_good: int | None) -> None:
  for net, run in runs.items():
    if run >= limit:
      raise NonFiniteError(
          f'{run} consecutive {net.upper()} updates up to step {done} (from step {done - run + 1}'
          f') had a non-finite loss or gradient and were skipped; non-finite since the last log: '
          f'{bad}. The newest checkpoint (step {last_good}) holds the last good state: lower the '
          'learning rate, check the data or raise config.max_nonfinite_steps, then resume.')


class Preemption:
  """SIGTERM -> save at the next step and stop. Several processes agree on the step through
  orbax's preemption sync point (JAX's distributed runtime receives the signal); a single
  process through its own SIGTERM handler, installed only while the loop runs."""

  def __init__(self):
    self.signalled = False
    self._previous = None
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

  def _on_sigterm(self, signum, frame):
    del signum, frame
    self.signalled = True

  def reached(self, ckpt: checkpointing.Checkpointer, step: int) -> bool:
    if jax.process_count() > 1:
      return ckpt.reached_preemption(step)
    return self.signalled

  def restore(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None


def train(config: ml_collections.ConfigDict, workdir: str, mesh=None) -> TrainState:
  """Trains `config.model` in `workdir`, resuming from its latest checkpoint; returns the state."""
  mesh = make_mesh() if mesh is None else mesh
  os.makedirs(workdir, exist_ok=True)
  is_chief = jax.process_index() == 0
  train_source = pipeline.make_source(config.data, 'train')
  test_source = pipeline.make_source(config.data, 'test')
  class_names = list(train_source.class_names)
  config_validation.validate(config, mesh.devices.size, class_names)  # before compiling
  for split, source in (('train', train_source), ('test', test_source)):
    skipped_list = os.path.join(workdir, f'data_problems_{split}.txt')
    if is_chief and sources.write_problems(source, skipped_list):  # data.on_error = 'skip'
      logging.warning('%d %s items were left out; see %s.', len(source.problems), split,
                      skipped_list)
  objective = objectives.build(config, len(class_names))

  dataset = pipeline.create_train_dataset(config, train_source,
                                          process_index=jax.process_index(),
                                          process_count=jax.process_count())
  data_iter = iter(dataset)

  abstract_state = jax.eval_shape(functools.partial(init_state, objective, config))
  d_step, g_step, state_sharding, batch_sharding = compile_steps(objective, config, mesh,
                                                                 abstract_state)
  ckpt = checkpointing.Checkpointer(workdir, max_to_keep=config.max_checkpoints)
  meta = {'class_names': class_names, 'config': config.to_dict()}
  start = ckpt.latest_step()
  if start is None:
    state = jax.jit(functools.partial(init_state, objective, config),
                    out_shardings=state_sharding)()
    aux, record = objective.pretrained_aux(state.aux)  # e.g. a loss network's weights file
    state = state.replace(aux=aux)
    meta.update(record)
    start = 0
  else:
    saved = ckpt.meta(start)
    if saved.get('class_names') != class_names:
      raise ValueError(f'{workdir} holds a run on classes {saved.get("class_names")} but the data '
                       f'now has {class_names}; use a new --workdir.')
    meta = dict(saved, **meta)  # keeps what the fresh run recorded (e.g. its loss network)
    template = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                            abstract_state, state_sharding)
    state, iter_state = ckpt.restore(start, template)
    data_iter.set_state(iter_state)
    logging.info('Resumed from %s at step %d.', workdir, start)
  if is_chief:
    with open(os.path.join(workdir, 'run.json'), 'w') as f:
      json.dump(meta, f, indent=1)

  writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
  if start == 0:
    writer.write_hparams({k: v for k, v in config.to_dict().items()
                          if isinstance(v, (int, float, str, bool))})
  report = periodic_actions.ReportProgress(num_train_steps=config.num_train_steps, writer=writer,
                                           every_steps=config.log_every)
  samples = sample_inputs(config, test_source, config.num_sample_faces, objective.batch_keys)
  sample_cells = jax.jit(objective.sample_cells)

  sums, skipped = {}, 0  # skipped: undecodable files met by this process
  previous_metrics = None  # the last step's metrics, waited for once the next step is queued
  preemption = Preemption()
  try:
    for step in range(start, config.num_train_steps):
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        host_batch = next(data_iter)
        skipped += int(host_batch.pop('num_skipped'))
        batch = _put_batch(host_batch, batch_sharding)
        rng = jax.random.fold_in(state.rng, step)
        state, metrics = d_step(state, batch, rng)
        if (step + 1) % config.n_critic == 0:
          state, g_metrics = g_step(state, batch, rng)
          metrics = dict(metrics, **g_metrics)
      # Sums of D metrics over every step and of G metrics over G steps, kept on device.
      sums = _accumulate(sums, metrics)
      # At most two steps in flight. XLA:CPU gang-schedules a multi-device program on a thread
      # pool sized for one collective, and a dispatch that finds a device's queue of computations
      # full blocks a pool thread: the collective then waits for ever (2 processes x 4 devices on
      # 2 cores hung so). The bound also caps the device memory held by queued batches.
      jax.block_until_ready(previous_metrics)
      previous_metrics = metrics
      done = step + 1
      report(done)
      last = done == config.num_train_steps
      if done % config.log_every == 0 or last:
        host, bad = _summarise(sums)
        runs = {k: int(v) for k, v in jax.device_get(state.nonfinite_run).items()}
        _check_nonfinite(done, runs, bad, config.max_nonfinite_steps, ckpt.latest_step())
        if bad:
          logging.warning('Step %d: non-finite %s; those updates were skipped.', done, bad)
        host['data/skipped_images'] = float(skipped)
        writer.write_scalars(done, host)
        sums = {}
      if done % config.sample_every == 0 or last:
        # Every process runs the translation (its program spans every device); the chief writes.
        grid = sample_grid(sample_cells, generator_params(state), samples)
        if is_chief:
          visualization.save_png(os.path.join(workdir, 'samples', f'step_{done:07d}.png'), grid)
          writer.write_images(done, {'samples': grid[None]})
      preempted = preemption.reached(ckpt, done)
      if done % config.checkpoint_every == 0 or last or preempted:
        runs = {k: int(v) for k, v in jax.device_get(state.nonfinite_run).items()}
        if any(runs.values()):  # keep the newest checkpoint the last good state
          _check_nonfinite(done, runs, [], config.max_nonfinite_steps, ckpt.latest_step())
          logging.warning('Step %d: not saved, the last updates were non-finite (%s).', done, runs)
        elif ckpt.latest_step() != done:
          ckpt.save(done, state, data_iter.get_state(), meta)
      if preempted:
        ckpt.wait()
        logging.warning('Preempted (SIGTERM): saved step %d in %s; rerun the same command to '
                        'continue.', done, workdir)
        break
  finally:  # an error in the loop still lets the saves in flight finish
    preemption.restore()
    ckpt.wait()
    ckpt.close()
    writer.flush()
  return state
