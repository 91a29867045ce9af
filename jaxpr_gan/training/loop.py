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
from jaxpr_gan import registry
from jaxpr_gan import workdir_lock
from jaxpr_gan.nn import conv
from jaxpr_gan.training import memory
from jaxpr_gan.training import outputs as outputs_lib
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


NonFiniteError = outputs_lib.NonFiniteError
_check_nonfinite = outputs_lib.check_nonfinite


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
  """What the loop works with, set up once; one output per seed (one for a plain run)."""

  config: ml_collections.ConfigDict
  objective: Any
  data_iter: Any
  d_step: Any
  g_step: Any
  batch_sharding: dict
  outputs: list[outputs_lib.Output]
  samples: dict
  sample_cells: Any
  is_chief: bool


def _data(config, workdirs, mesh, is_chief: bool, stack: contextlib.ExitStack):
  """-> (train source, test source, class names), the config checked against the data before
  anything is written or compiled; then each workdir is taken (workdir_lock) and checked."""
  train_source = pipeline.make_source(config.data, 'train')
  test_source = pipeline.make_source(config.data, 'test')
  class_names = list(train_source.class_names)
  config_validation.validate(config, mesh.devices.size, class_names, steps_lib.platform_of(mesh))
  for workdir in workdirs:
    if is_chief:  # on gs:// and s3://: whether the bucket can be used (storage_check)
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


def _fresh_state(objective, init, outputs, state_sharding):
  """A new run's state from `init` (each seed's, on a seed axis, for several outputs); the
  objective's pretrained parts (e.g. a loss network's weights file) read into it and recorded."""
  state = jax.jit(init, out_shardings=state_sharding)()
  auxes = []
  for out in outputs:
    aux, record = objective.pretrained_aux(out.part(state.aux))
    out.meta.update(record)
    auxes.append(aux)
  if outputs[0].index is None:
    return state.replace(aux=auxes[0])
  return state.replace(aux=state_lib.stack_seeds(auxes))


def _initial_state(objective, init, outputs, abstract_state, state_sharding, data_iter, names):
  """-> (state, first step): the newest intact checkpoint of every output (all at the same
  step), or a fresh state. Sets each output's metadata."""
  template = jax.tree.map(
    lambda s, sh: jax.ShapeDtypeStruct(s.shape[1:] if outputs[0].index is not None else s.shape,
                                       s.dtype, sharding=sh),
    abstract_state,
    state_sharding,
  )  # fmt: skip
  for out in outputs:
    out.meta = {'class_names': names, 'config': out.config.to_dict()}
  found = [outputs_lib.restore(out, template, data_iter, names) for out in outputs]
  if all(f is None for f in found):
    return _fresh_state(objective, init, outputs, state_sharding), 0
  steps = sorted({None if f is None else f[0] for f in found}, key=lambda s: s or 0)
  if len(steps) > 1:
    raise errors.BadInput(
      'the seeds to train together are at different steps '
      f'({", ".join(f"{o.workdir}: {f[0] if f else 0}" for o, f in zip(outputs, found))}); '
      'train them one after another.'
    )
  data_iter.set_state(found[0][2])
  for out, (_, _, _, saved) in zip(outputs, found):
    out.meta = dict(saved, **out.meta)  # keeps what the fresh run recorded
  if outputs[0].index is None:
    return found[0][1], found[0][0]
  state = state_lib.stack_seeds([f[1] for f in found])
  return jax.device_put(state, state_sharding), found[0][0]


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


def _say_model(config, abstract_state, num_seeds: int) -> None:
  count = lambda tree: f'{sum(x.size for x in jax.tree.leaves(tree)) // max(num_seeds, 1):,}'
  logging.info(
    'Model %s: G %s parameters, D %s; conv_impl %r%s.',
    config.model,
    count(abstract_state.params['g']),
    count(abstract_state.params['d']),
    config.conv_impl,
    f'; {num_seeds} seeds in one program' if num_seeds else '',
  )


def _outputs(config, runs, stacked: bool) -> list[outputs_lib.Output]:
  """One output per (workdir, seed) of `runs`, each with its config's seed."""
  outs = []
  for i, (workdir, seed) in enumerate(runs):
    seeded = ml_collections.ConfigDict(config.to_dict())
    seeded.seed = int(seed)
    ckpt = checkpointing.Checkpointer(workdir, max_to_keep=config.max_checkpoints)
    outs.append(outputs_lib.Output(workdir, seeded, ckpt, i if stacked else None))
  return outs


def _setup(config, runs, mesh, stack: contextlib.ExitStack, stacked: bool):
  """-> (_Run, state, first step) for `runs`: (workdir, seed) pairs, on a seed axis if
  `stacked`."""
  is_chief = jax.process_index() == 0
  workdirs = [w for w, _ in runs]
  train_source, test_source, class_names = _data(config, workdirs, mesh, is_chief, stack)
  _say_devices_and_data(mesh, config, train_source, test_source, class_names)
  objective = registry.build(config, len(class_names))
  dataset = pipeline.create_train_dataset(
    config, train_source, process_index=jax.process_index(), process_count=jax.process_count()
  )
  data_iter = iter(dataset)
  num_seeds = len(runs) if stacked else 0
  seeds = [s for _, s in runs]
  init = (
    functools.partial(state_lib.init_seeds, objective, config, seeds)
    if stacked
    else functools.partial(state_lib.init_state, objective, config)
  )
  abstract_state = jax.eval_shape(init)
  _say_model(config, abstract_state, num_seeds)
  d_step, g_step, state_sharding, batch_sharding = steps_lib.compile_steps(
    objective, config, mesh, abstract_state, num_seeds=num_seeds
  )
  memory.check(  # compiles the steps for their first call
    objective, config, (d_step, g_step), abstract_state, state_sharding, batch_sharding
  )
  outs = _outputs(config, runs, stacked)
  state, start = _initial_state(
    objective, init, outs, abstract_state, state_sharding, data_iter, class_names
  )
  for out in outs:
    outputs_lib.open_writer(out, start, is_chief)
  faces = samples_lib.sample_inputs(
    config, test_source, config.num_sample_faces, objective.batch_keys
  )
  sample_cells = jax.jit(objective.sample_cells)
  run = _Run(config, objective, data_iter, d_step, g_step, batch_sharding, outs, faces,
             sample_cells, is_chief)  # fmt: skip
  return run, state, start


def _iteration(run: _Run, state, step: int):
  """One D step and, every n_critic, one G step; -> (state, metrics, images skipped)."""
  with jax.profiler.StepTraceAnnotation('train', step_num=step):
    host_batch = next(run.data_iter)
    skipped = int(host_batch.pop('num_skipped'))
    batch = _put_batch(host_batch, run.batch_sharding)
    rng = steps_lib.step_rng(state, step)
    state, metrics = run.d_step(state, batch, rng)
    if (step + 1) % run.config.n_critic == 0:
      state, g_metrics = run.g_step(state, batch, rng)
      metrics = dict(metrics, **g_metrics)
  return state, metrics, skipped


def _loop(run: _Run, state, start: int):
  config, outs = run.config, run.outputs
  report = periodic_actions.ReportProgress(
    num_train_steps=config.num_train_steps, writer=outs[0].writer, every_steps=config.log_every
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
        outputs_lib.log(outs, state, done, sums, skipped)
        sums = {}
      if done % config.sample_every == 0 or last:
        outputs_lib.sample(outs, run.sample_cells, run.samples, state, done, run.is_chief)
      preempted = preemption.reached(outs[0].ckpt, done)
      if done % config.checkpoint_every == 0 or last or preempted:
        outputs_lib.checkpoint(outs, state, done, run.data_iter)
      if preempted:
        for out in outs:
          out.ckpt.wait()
        logging.warning(
          'Preempted (SIGTERM): saved step %d in %s; rerun the same command to continue.',
          done,
          ', '.join(out.workdir for out in outs),
        )
        break
  finally:  # an error in the loop still lets the saves in flight finish
    preemption.restore()
    outputs_lib.close(outs)
  return state


def train(config: ml_collections.ConfigDict, workdir: str, mesh=None) -> state_lib.TrainState:
  """Trains `config.model` in `workdir`, resuming from its latest checkpoint; returns the state.
  Keys the config lacks take their defaults (registry.complete)."""
  return _train(config, [(workdir, config.seed)], mesh, stacked=False)


def train_seeds(
  config: ml_collections.ConfigDict, workdirs, seeds, mesh=None
) -> state_lib.TrainState:
  """Trains `config` with each of `seeds` (as config.seed) in one vmapped program on the same
  batches, each seed's run in its workdir as if trained alone: its checkpoints, run.json,
  metrics and samples (so eval.py and a resume read it as any run). Resumes when every workdir
  holds the same newest step. Returns the state with its seed axis."""
  if len(workdirs) != len(seeds):
    raise errors.BadInput(f'{len(workdirs)} workdirs for {len(seeds)} seeds')
  return _train(config, list(zip(workdirs, seeds)), mesh, stacked=True)


def _train(config, runs, mesh, stacked: bool):
  mesh = steps_lib.make_mesh() if mesh is None else mesh
  config = registry.complete(config)
  with contextlib.ExitStack() as stack:  # the workdirs' locks, held to the end
    run, state, start = _setup(config, runs, mesh, stack, stacked)
    with conv.implementation(config.conv_impl, (steps_lib.platform_of(mesh),)):
      return _loop(run, state, start)
