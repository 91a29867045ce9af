"""A run directory's generator: restored for evaluation, editing and export, or written anew.

`restore` is the one way back from a checkpoint to a generator. The config is the one saved with
the checkpoint unless another is given; an older run's config gets today's keys, each missing
one at its default (`registry.complete`), so old runs still evaluate, edit and export.
"""

from collections.abc import Callable
import dataclasses
import functools
import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

from jaxpr_gan import checkpointing
from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan import registry
from jaxpr_gan import run_config
from jaxpr_gan import storage
from jaxpr_gan import storage_check
from jaxpr_gan.training import state as state_lib


@dataclasses.dataclass(frozen=True)
class Restored:
  config: ml_collections.ConfigDict
  objective: Any
  g_params: Any  # the EMA copy of G when the run keeps one
  class_names: list[str]
  step: int
  d_params: Any = None  # the checkpoint's params['d'] (e.g. StarGAN's attribute classifier)
  imported: dict | None = None  # what tools.convert recorded: the files and networks converted


def _runs_in(parent: str) -> list[str]:
  """The folders of `parent` (local or remote) that hold a checkpoints/ folder."""
  try:
    names = storage.listdir(parent) if storage.isdir(parent) else []
  except FileNotFoundError:
    names = []
  return [d for d in names if storage.isdir(storage.join(parent, d, 'checkpoints'))]


def _checkpointer(workdir: str) -> checkpointing.Checkpointer:
  """The run's checkpoints; a one-line error for a store that cannot be used (gs://, s3://:
  storage_check) or a missing run, before anything is restored."""
  storage_check.check_reachable(workdir)
  if not storage.isdir(workdir):
    runs = _runs_in(storage.dirname(workdir))
    raise errors.NotFound(
      f'no run directory {workdir!r}; runs beside it: {", ".join(runs) or "none"}'
    )
  return checkpointing.Checkpointer(workdir, max_to_keep=None, async_save=False)


def restore(
  workdir: str, step: int | None = None, config: ml_collections.ConfigDict | None = None
) -> Restored:
  """The generator of `workdir`'s checkpoint at `step` (default: the newest intact one), built by
  `config` (default: the one saved with the checkpoint; a given one that differs from it is
  logged as one warning, key by key). A damaged step named by `step` is an error
  (checkpointing.DamagedCheckpoint); without `step`, damaged steps are skipped."""
  ckpt = _checkpointer(workdir)
  built = {}

  def template(meta: dict):
    built['config'] = registry.complete(meta['config'] if config is None else config)
    built['objective'] = registry.build(built['config'], len(meta['class_names']))
    abstract = jax.eval_shape(
      functools.partial(state_lib.init_state, built['objective'], built['config'])
    )
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), abstract)

  none = errors.NotFound(
    f'no checkpoint in {os.path.join(workdir, "checkpoints")}: train '
    f'first with python train.py --config ... --workdir {workdir}'
  )
  try:
    steps = ckpt.all_steps()
    if not steps:
      raise none
    if step is None:
      found = ckpt.restore_newest(template, with_data_iter=False)
      if found is None:
        raise none
      step, state, _, meta = found
    elif step not in steps:
      raise errors.BadInput(
        f'no checkpoint for step {step} in {workdir}; saved steps: {sorted(steps)}'
      )
    else:
      meta = ckpt.meta(step)
      state, _ = ckpt.restore(step, template(meta), with_data_iter=False, meta=meta)
  finally:
    ckpt.close()
  if config is not None:
    warn_config_differs(registry.complete(meta['config']), built['config'], int(step))
  return Restored(
    built['config'],
    built['objective'],
    state_lib.generator_params(state),
    list(meta['class_names']),
    int(step),
    state.params['d'],
    meta.get('imported'),
  )


def warn_config_differs(saved: ml_collections.ConfigDict, given, step: int) -> None:
  """One warning listing each key where the `given` config departs from the checkpoint's (both
  completed, so a default that only one of them spells out is no difference)."""
  found = run_config.diff(saved, given)
  if found:
    logging.warning(
      'The config given differs from the one saved with the checkpoint of step %d: %s',
      step,
      '; '.join(f'config.{k}: checkpoint {a!r}, given {b!r}' for k, a, b in found),
    )


def write_run(
  config: ml_collections.ConfigDict,
  class_names,
  workdir: str,
  set_params: Callable | None = None,
  step: int = 0,
  extra_meta: dict | None = None,
  set_ema: Callable | None = None,
) -> None:
  """A run directory with one checkpoint: a fresh initialisation, its params passed through
  `set_params` (e.g. replaced by converted weights); the EMA copy of G, if the config keeps one,
  equals the final params['g'], passed through `set_ema` (e.g. imported EMA networks). For
  imported weights and tests."""
  ckpt = checkpointing.Checkpointer(workdir, max_to_keep=None, async_save=False)
  if ckpt.all_steps():
    raise errors.BadInput(
      f'{workdir} already holds checkpoints {ckpt.all_steps()}; use a new directory.'
    )
  config = registry.complete(config)
  objective = registry.build(config, len(class_names))
  state = jax.jit(functools.partial(state_lib.init_state, objective, config))()
  if set_params is not None:
    state = state.replace(params=set_params(jax.device_get(state.params)))
  if jax.tree.leaves(state.ema_params):
    ema = state.params['g']
    state = state.replace(ema_params=ema if set_ema is None else set_ema(ema))
  state = state.replace(step=jnp.asarray(step, jnp.int32))
  meta = {'class_names': list(class_names), 'config': config.to_dict(), **(extra_meta or {})}
  ckpt.save(step, state, None, meta)
  ckpt.close()
  files.write_json(os.path.join(workdir, 'run.json'), meta)
