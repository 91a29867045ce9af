"""orbax CheckpointManager holding, per step: train state, grain iterator state, run metadata.

Saves are asynchronous; the last `max_to_keep` steps are kept. A run restarted on the same workdir
continues from the latest complete checkpoint (orbax ignores unfinished ones).
"""
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

_ITEMS = ('state', 'data_iter', 'meta')


def _manager(workdir: str, max_to_keep: int | None = None, async_save: bool = True):
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                         enable_async_checkpointing=async_save, create=True)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                               options=options, item_names=_ITEMS)


class Checkpointer:
  """Saves and restores (state, data iterator, metadata) of one run directory."""

  def __init__(self, workdir: str, max_to_keep: int | None = 3, async_save: bool = True):
    self._manager = _manager(workdir, max_to_keep, async_save)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_iter_state: dict | None, meta: dict) -> None:
    items = {'state': ocp.args.StandardSave(state), 'meta': ocp.args.JsonSave(meta)}
    if data_iter_state is not None:
      items['data_iter'] = ocp.args.JsonSave(data_iter_state)
    self._manager.save(step, args=ocp.args.Composite(**items))

  def restore(self, step: int, state_template: Any, with_data_iter: bool = True):
    """-> (state laid out like `state_template` (arrays or ShapeDtypeStructs), iterator state)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_template)
    items = {'state': ocp.args.StandardRestore(abstract)}
    if with_data_iter:
      items['data_iter'] = ocp.args.JsonRestore()
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    except ValueError as e:
      if 'tree structures do not match' not in str(e) and 'shape' not in str(e):
        raise
      raise ValueError(
          f'the checkpoint of step {step} in {self._manager.directory} does not fit this config '
          '(other model, sizes or classes): pass the config the run was trained with; it is '
          'saved in run.json beside checkpoints/.') from e
    return restored['state'], restored.get('data_iter') if with_data_iter else None

  def meta(self, step: int) -> dict:
    return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def quiet_orbax_logging() -> None:
  """Drops orbax's per-save INFO lines (dozens per checkpoint) from the absl log."""
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  def keep(record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname

  absl_logging.get_absl_handler().addFilter(keep)
