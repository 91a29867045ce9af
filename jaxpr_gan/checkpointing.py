"""orbax CheckpointManager holding, per step: train state, grain iterator state, run metadata.

Saves are asynchronous; the last `max_to_keep` steps are kept. A run restarted on the same workdir
continues from the latest complete checkpoint.

Crash safety (orbax 0.12, local and other POSIX file systems): a step is written into
`checkpoints/<step>.orbax-checkpoint-tmp/`, and committed by writing `commit_success.txt` into it
and renaming it to `checkpoints/<step>/` (atomic rename). A process killed at any moment, even in
the middle of an asynchronous save, therefore leaves every committed step intact, and the
unfinished one under its temporary name, which `all_steps`/`latest_step`/`restore` ignore.
orbax only deletes such a directory when the same step is saved again; the first `save` of a
`Checkpointer` removes all of them (`remove_partial_saves`). Readers never do: a concurrent
evaluation must not delete a save in flight.
Steps beyond `max_to_keep` are first renamed into `checkpoints/deleting/` (atomic), so that a kill
in the middle of their deletion can't leave a half-deleted step that `all_steps` still lists;
`save`, `wait` and `close` empty that directory. See tests/test_resilience.py.
"""

import os
import re
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxpr_gan import distributed

_ITEMS = ('state', 'data_iter', 'meta')
_TRASH = 'deleting'  # orbax's todelete_subdir: old steps are renamed into it, then deleted by us


def _manager(workdir: str, max_to_keep: int | None = None, async_save: bool = True):
  options = ocp.CheckpointManagerOptions(
    max_to_keep=max_to_keep,
    enable_async_checkpointing=async_save,
    create=True,
    todelete_subdir=_TRASH,
  )
  return ocp.CheckpointManager(
    os.path.join(os.path.abspath(workdir), 'checkpoints'), options=options, item_names=_ITEMS
  )


class Checkpointer:
  """Saves and restores (state, data iterator, metadata) of one run directory."""

  def __init__(self, workdir: str, max_to_keep: int | None = 3, async_save: bool = True):
    self._manager = _manager(workdir, max_to_keep, async_save)
    self._partial_saves_removed = False

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_iter_state: dict | None, meta: dict) -> None:
    if not self._partial_saves_removed:  # before this process's first save: none is in flight
      self.remove_partial_saves()
      self._partial_saves_removed = True
    self._empty_trash()
    items = {'state': ocp.args.StandardSave(state), 'meta': ocp.args.JsonSave(meta)}
    if data_iter_state is not None:
      # Multi-process: every process's own position (orbax writes JSON from process 0 only).
      items['data_iter'] = ocp.args.JsonSave(distributed.gather_iterator_states(data_iter_state))
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
        'saved in run.json beside checkpoints/.'
      ) from e
    if not with_data_iter:
      return restored['state'], None
    return restored['state'], distributed.own_iterator_state(restored.get('data_iter'))

  def _partial_save_paths(self) -> list:
    # Unfinished step directories as orbax sees them (renamed-on-commit locally; without
    # commit_success.txt on GCS), restricted to step names so nothing else is ever touched.
    paths = [t.get() for t in ocp.path.step.all_temporary_paths(self._manager.directory)]
    return [p for p in paths if re.fullmatch(r'\d+(\.orbax-checkpoint-tmp.*)?', p.name)]

  def partial_saves(self) -> list[str]:
    """Temporary directories of saves that never committed (their process died), by name."""
    return sorted(p.name for p in self._partial_save_paths())

  def leftovers(self) -> list[str]:
    """Paths under checkpoints/ that hold no usable checkpoint: `partial_saves` and the old
    steps in deleting/ that a killed process did not finish deleting."""
    trash = self._manager.directory / _TRASH
    old = sorted(f'{_TRASH}/{p.name}' for p in trash.iterdir()) if trash.exists() else []
    return self.partial_saves() + old

  def _empty_trash(self) -> None:
    # Safe at any time, from any process: what is in deleting/ was renamed there whole. The
    # directory itself stays, since orbax creates it before renaming into it.
    trash = self._manager.directory / _TRASH
    if jax.process_index() != 0 or not trash.exists():
      return
    for path in trash.iterdir():
      try:
        path.rmtree(missing_ok=True)
      except OSError:  # being deleted by another process: one of us finishes
        pass

  def remove_partial_saves(self) -> list[str]:
    """Deletes what `partial_saves` lists (process 0 only); -> the names deleted.

    Only for the process that writes this run's checkpoints, while none of its saves is in
    flight: `save` calls it once, before its first save.
    """
    if jax.process_index() != 0:
      return []
    removed = []
    for path in self._partial_save_paths():
      path.rmtree()
      removed.append(path.name)
    return sorted(removed)

  def meta(self, step: int) -> dict:
    return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']

  def reached_preemption(self, step: int) -> bool:
    """True on every process once the preemption sync point is reached (multi-process runs)."""
    return self._manager.reached_preemption(step)

  def wait(self) -> None:
    self._manager.wait_until_finished()
    self._empty_trash()

  def close(self) -> None:
    self._manager.close()
    self._empty_trash()


def quiet_orbax_logging() -> None:
  """Drops orbax's per-save INFO lines (dozens per checkpoint) from the absl log."""
  import logging as std_logging  # pylint: disable=g-import-not-at-top

  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  def keep(record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname

  absl_logging.get_absl_handler().addFilter(keep)
