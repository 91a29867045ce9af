"""The training loop: dispatches the compiled steps and fetches from the devices only at log steps.

Batches go onto the mesh, steps run asynchronously (at most two in flight), metrics are summed
on the device and fetched every `log_every` steps; samples, checkpoints (state and data-iterator
position), preemption and the non-finite guard act at their own intervals.
"""

import contextlib
import dataclasses
import functools
import os
import signal
import threading
from typing import Any

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from input_pipeline import pipeline
from input_pipeline import sources
from jaxpr_gan import checkpointing
from jaxpr_gan import config_validation
from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan import images
from jaxpr_gan import registry
from jaxpr_gan import workdir_lock
from jaxpr_gan.nn import conv
from jaxpr_gan.training import memory
from jaxpr_gan.training import samples as samples_lib
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib

Metrics = steps_lib.Metrics


def _put_batch(batch: dict[str, np.ndarray], batch_sharding) -> dict[str, jax.Array]:
  return {
    k: jax.make_array_from_process_local_data(batch_sharding[k], batch[k]) for k in batch_sharding
  }


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


def _check_nonfinite(
  done: int, runs: dict[str, int], bad: list[str], limit: int, last_good: int | None
) -> None:
  saved = (
    f'The newest checkpoint (step {last_good}) holds the last good state'
    if last_good is not None
    else 'No checkpoint was saved yet, so a rerun starts afresh'
  )
  for net, run in runs.items():
    if run >= limit:
      raise NonFiniteError(
        f'{run} consecutive {net.upper()} updates up to step {done} (from step {done - run + 1}'
        f') had a non-finite loss or gradient and were skipped; non-finite since the last log: '
        f'{bad}. {saved}: lower the '
        'learning rate, check the data or raise config.max_nonfinite_steps, then resume.'
      )


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


@dataclasses.dataclass
class _Run:
  """What the loop works with, set up once."""

  config: ml_collections.ConfigDict
  workdir: str
  objective: Any
  data_iter: Any
  d_step: Any
  g_step: Any
  batch_sharding: dict
  ckpt: checkpointing.Checkpointer
  writer: Any
  samples: dict
  sample_cells: Any
  is_chief: bool


def _data(config, workdir: str, mesh, is_chief: bool, stack: contextlib.ExitStack):
  """-> (train source, test source, class names), the config checked against the data before
  anything is written or compiled; then the workdir is taken (workdir_lock) and checked."""
  train_source = pipeline.make_source(config.data, 'train')
  test_source = pipeline.make_source(config.data, 'test')
  class_names = list(train_source.class_names)
  config_validation.validate(config, mesh.devices.size, class_names, steps_lib.platform_of(mesh))
  if is_chief:
    files.make_writable_folder(workdir, 'the workdir', '--workdir')
  stack.enter_context(workdir_lock.held(workdir))
  if is_chief:
    files.make_writable_folder(os.path.join(workdir, 'checkpoints'), 'the checkpoints folder')
  for split, source in (('train', train_source), ('test', test_source)):
    skipped_list = os.path.join(workdir, f'data_problems_{split}.txt')
    if is_chief and sources.write_problems(source, skipped_list):  # data.on_error = 'skip'
      logging.warning(
        '%d %s items were left out; see %s.', len(source.problems), split, skipped_list
      )
  return train_source, test_source, class_names


def _initial_state(
  objective, config, ckpt, abstract_state, state_sharding, data_iter, class_names, workdir
):
  """-> (state, first step, run metadata): the newest intact checkpoint's, or a fresh state.
  Damaged steps are moved into checkpoints/damaged/ on the way (checkpointing.restore_newest)."""
  meta = {'class_names': class_names, 'config': config.to_dict()}
  template = jax.tree.map(
    lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
    abstract_state,
    state_sharding,
  )

  def checked_template(saved: dict):
    if saved.get('class_names') != class_names:
      raise errors.ConfigError(
        f'{workdir} holds a run on classes {saved.get("class_names")} but the data '
        f'now has {class_names}; use a new --workdir.'
      )
    return template

  found = ckpt.restore_newest(checked_template, move_damaged=True)
  if found is None:
    state = jax.jit(
      functools.partial(state_lib.init_state, objective, config), out_shardings=state_sharding
    )()
    aux, record = objective.pretrained_aux(state.aux)  # e.g. a loss network's weights file
    meta.update(record)
    return state.replace(aux=aux), 0, meta
  start, state, iter_state, saved = found
  data_iter.set_state(iter_state)
  logging.info('Resumed from %s at step %d.', workdir, start)
  saved.pop('digest', None)
  return state, start, dict(saved, **meta)  # keeps what the fresh run recorded


def _say_devices_and_data(mesh, config, train_source, test_source, class_names) -> None:
  device = mesh.devices.flat[0]
  logging.info(
    'Devices: %d x %s (%s) in %d process(es); mesh %s.',
    mesh.devices.size,
    device.device_kind,
    device.platform,
    jax.process_count(),
    dict(mesh.shape),
  )
  logging.info(
    'Data: source %r, %d training and %d test items, classes %s.',
    config.data.source,
    len(train_source),
    len(test_source),
    class_names,
  )


def _say_model(config, abstract_state) -> None:
  count = lambda tree: f'{sum(x.size for x in jax.tree.leaves(tree)):,}'
  logging.info(
    'Model %s: G %s parameters, D %s; conv_impl %r.',
    config.model,
    count(abstract_state.params['g']),
    count(abstract_state.params['d']),
    config.conv_impl,
  )


def _writer(config, workdir: str, meta: dict, start: int, is_chief: bool):
  """Writes run.json (the chief) and opens the metric writers."""
  if is_chief:
    files.write_json(os.path.join(workdir, 'run.json'), meta)
  writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
  if start == 0:
    writer.write_hparams(
      {k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))}
    )
  return writer


def _setup(config, workdir: str, mesh, stack: contextlib.ExitStack):
  """-> (_Run, state, first step, run metadata)."""
  is_chief = jax.process_index() == 0
  train_source, test_source, class_names = _data(config, workdir, mesh, is_chief, stack)
  _say_devices_and_data(mesh, config, train_source, test_source, class_names)
  objective = registry.build(config, len(class_names))
  dataset = pipeline.create_train_dataset(
    config, train_source, process_index=jax.process_index(), process_count=jax.process_count()
  )
  data_iter = iter(dataset)
  abstract_state = jax.eval_shape(functools.partial(state_lib.init_state, objective, config))
  _say_model(config, abstract_state)
  d_step, g_step, state_sharding, batch_sharding = steps_lib.compile_steps(
    objective, config, mesh, abstract_state
  )
  memory.check(  # compiles the steps for their first call
    objective, config, (d_step, g_step), abstract_state, state_sharding, batch_sharding
  )
  ckpt = checkpointing.Checkpointer(workdir, max_to_keep=config.max_checkpoints)
  state, start, meta = _initial_state(
    objective, config, ckpt, abstract_state, state_sharding, data_iter, class_names, workdir
  )
  writer = _writer(config, workdir, meta, start, is_chief)
  faces = samples_lib.sample_inputs(
    config, test_source, config.num_sample_faces, objective.batch_keys
  )
  sample_cells = jax.jit(objective.sample_cells)
  run = _Run(config, workdir, objective, data_iter, d_step, g_step, batch_sharding, ckpt, writer,
             faces, sample_cells, is_chief)  # fmt: skip
  return run, state, start, meta


def _log(run: _Run, state, done: int, sums: dict, skipped: int) -> None:
  host, bad = _summarise(sums)
  runs = {k: int(v) for k, v in jax.device_get(state.nonfinite_run).items()}
  _check_nonfinite(done, runs, bad, run.config.max_nonfinite_steps, run.ckpt.latest_step())
  if bad:
    logging.warning('Step %d: non-finite %s; those updates were skipped.', done, bad)
  host['data/skipped_images'] = float(skipped)
  run.writer.write_scalars(done, host)


def _sample(run: _Run, state, done: int) -> None:
  # Every process runs the translation (its program spans every device); the chief writes.
  grid = samples_lib.sample_grid(run.sample_cells, state_lib.generator_params(state), run.samples)
  if run.is_chief:
    images.save_png(os.path.join(run.workdir, 'samples', f'step_{done:07d}.png'), grid)
    run.writer.write_images(done, {'samples': grid[None]})


def _checkpoint(run: _Run, state, done: int, meta: dict) -> None:
  runs = {k: int(v) for k, v in jax.device_get(state.nonfinite_run).items()}
  if any(runs.values()):  # keep the newest checkpoint the last good state
    _check_nonfinite(done, runs, [], run.config.max_nonfinite_steps, run.ckpt.latest_step())
    logging.warning('Step %d: not saved, the last updates were non-finite (%s).', done, runs)
  elif run.ckpt.latest_step() != done:
    run.ckpt.save(done, state, run.data_iter.get_state(), meta)


def _iteration(run: _Run, state, step: int):
  """One D step and, every n_critic, one G step; -> (state, metrics, images skipped)."""
  with jax.profiler.StepTraceAnnotation('train', step_num=step):
    host_batch = next(run.data_iter)
    skipped = int(host_batch.pop('num_skipped'))
    batch = _put_batch(host_batch, run.batch_sharding)
    rng = jax.random.fold_in(state.rng, step)
    state, metrics = run.d_step(state, batch, rng)
    if (step + 1) % run.config.n_critic == 0:
      state, g_metrics = run.g_step(state, batch, rng)
      metrics = dict(metrics, **g_metrics)
  return state, metrics, skipped


def _loop(run: _Run, state, start: int, meta: dict):
  config = run.config
  report = periodic_actions.ReportProgress(
    num_train_steps=config.num_train_steps, writer=run.writer, every_steps=config.log_every
  )
  sums, skipped = {}, 0  # skipped: undecodable files met by this process
  previous_metrics = None  # the last step's metrics, waited for once the next step is queued
  preemption = Preemption()
  try:
    for step in range(start, config.num_train_steps):
      state, metrics, bad_files = _iteration(run, state, step)
      skipped += bad_files
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
        _log(run, state, done, sums, skipped)
        sums = {}
      if done % config.sample_every == 0 or last:
        _sample(run, state, done)
      preempted = preemption.reached(run.ckpt, done)
      if done % config.checkpoint_every == 0 or last or preempted:
        _checkpoint(run, state, done, meta)
      if preempted:
        run.ckpt.wait()
        logging.warning(
          'Preempted (SIGTERM): saved step %d in %s; rerun the same command to continue.',
          done,
          run.workdir,
        )
        break
  finally:  # an error in the loop still lets the saves in flight finish
    preemption.restore()
    run.ckpt.wait()
    run.ckpt.close()
    run.writer.flush()
  return state


def train(config: ml_collections.ConfigDict, workdir: str, mesh=None) -> state_lib.TrainState:
  """Trains `config.model` in `workdir`, resuming from its latest checkpoint; returns the state.
  Keys the config lacks take their defaults (registry.complete)."""
  mesh = steps_lib.make_mesh() if mesh is None else mesh
  config = registry.complete(config)
  with contextlib.ExitStack() as stack:  # the workdir's lock, held to the end
    run, state, start, meta = _setup(config, workdir, mesh, stack)
    with conv.implementation(config.conv_impl, (steps_lib.platform_of(mesh),)):
      return _loop(run, state, start, meta)
