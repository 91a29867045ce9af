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

Verification: each step's metadata holds a digest of the saved state (two position-weighted sums
of every array's bits per leaf, computed on the devices, so every process of a multi-host run gets
it without gathering the arrays), of the data-iterator position and of the metadata itself.
`restore` and `meta` recompute them, and a step whose files are damaged (a flipped bit, a
truncated, deleted or garbled file) raises `DamagedCheckpoint` naming the step and the cause.
train.py moves such a step aside into `checkpoints/damaged/` and resumes from the newest intact
one; eval.py skips it (tests/test_checkpoint_faults.py).
"""

from collections.abc import Callable
import hashlib
import json
import re
import sys
from typing import Any

from absl import logging
import jax
from jax import lax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxpr_gan import distributed
from jaxpr_gan import errors
from jaxpr_gan import orbax_storage
from jaxpr_gan import storage

_ITEMS = ('state', 'data_iter', 'meta')
_TRASH = 'deleting'  # orbax's todelete_subdir: old steps are renamed into it, then deleted by us
DAMAGED = 'damaged'  # damaged steps are moved here, under checkpoints/
_MAX_REMOVED_WHILE_READING = 8
# Elements per digest program: bounds its temporaries, which XLA materialises when it does not
# fuse (jax_disable_most_optimizations): a paper-size state at once took gigabytes.
_DIGEST_CHUNK = 1 << 23


class DamagedCheckpoint(errors.UserError):
  """A saved step whose files do not give back what was saved."""

  def __init__(self, step: int, directory, cause: str):
    self.step, self.cause = step, cause
    super().__init__(f'checkpoint step {step} in {directory} is damaged: {cause}')


def _quiet_closed_loop_callbacks() -> None:
  """After a read fails, orbax closes its event loop while tensorstore still completes the other
  reads of that step, and each completion's callback reports `RuntimeError: Event loop is
  closed` as an unraisable exception: dozens of tracebacks around the one-line error. Those
  alone are dropped; every other unraisable exception is reported as before."""
  previous = sys.unraisablehook

  def hook(unraisable):
    e = unraisable.exc_value
    if isinstance(e, RuntimeError) and str(e) == 'Event loop is closed':
      return
    previous(unraisable)

  sys.unraisablehook = hook


_quiet_closed_loop_callbacks()


def _as_uint32(x: jax.Array) -> jax.Array:
  """The bits of any array as a flat uint32 vector (wider types split, narrower widened)."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  width = x.dtype.itemsize
  if width != 4:
    x = lax.bitcast_convert_type(x, {1: jnp.uint8, 2: jnp.uint16, 8: jnp.uint32}[width])
  else:
    x = lax.bitcast_convert_type(x, jnp.uint32)
  return x.astype(jnp.uint32).reshape(-1)


@jax.jit
def _leaf_sums(leaves: list[jax.Array]) -> jax.Array:
  """(leaves, 2) uint32: per leaf, the sum of its words and the sum weighted by 2 * index + 1,
  both mod 2^32. One changed bit changes the first; moved words change the second."""
  out = []
  for leaf in leaves:
    u = _as_uint32(leaf)
    odd = 2 * jnp.arange(u.size, dtype=jnp.uint32) + 1
    out.append(jnp.stack([jnp.sum(u, dtype=jnp.uint32), jnp.sum(u * odd, dtype=jnp.uint32)]))
  return jnp.stack(out) if out else jnp.zeros((0, 2), jnp.uint32)


def _chunks(leaves: list, limit: int = _DIGEST_CHUNK) -> list[list]:
  """Consecutive leaves in groups of at most `limit` elements (a larger leaf alone)."""
  groups, size = [[]], 0
  for leaf in leaves:
    if groups[-1] and size + leaf.size > limit:
      groups, size = groups + [[]], 0
    groups[-1].append(leaf)
    size += leaf.size
  return [g for g in groups if g]


def state_digest(state: Any) -> dict[str, str]:
  """{leaf path: 16 hex digits} of a (sharded) train state; every process gets the same."""
  pairs = jax.tree_util.tree_leaves_with_path(state)
  paths, leaves = [p for p, _ in pairs], [x for _, x in pairs]
  parts = [jax.device_get(_leaf_sums(group)) for group in _chunks(leaves)]
  sums = np.concatenate(parts) if parts else np.zeros((0, 2), np.uint32)
  return {jax.tree_util.keystr(p): f'{int(a):08x}{int(b):08x}' for p, (a, b) in zip(paths, sums)}


def _json_digest(value: Any) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:32]


def _with_digest(meta: dict, state: Any, data_iter: Any) -> dict:
  meta = {k: v for k, v in meta.items() if k != 'digest'}
  digest = {'state': state_digest(state), 'meta': _json_digest(meta)}
  if data_iter is not None:
    digest['data_iter'] = _json_digest(data_iter)
  return dict(meta, digest=digest)


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f'{type(error).__name__}: {text[0] if text else ""}'[:300]


def _manager(workdir: str, max_to_keep: int | None = None, async_save: bool = True):
  directory = storage.join(storage.absolute(workdir), 'checkpoints')
  remote = storage.is_remote(directory)
  if directory.startswith('s3://'):
    orbax_storage.enable_orbax_s3()
  options = ocp.CheckpointManagerOptions(
    max_to_keep=max_to_keep,
    enable_async_checkpointing=async_save,
    create=True,
    todelete_subdir=None if remote else _TRASH,
    atomicity_options=orbax_storage.atomicity_options(directory),
  )
  return ocp.CheckpointManager(directory, options=options, item_names=_ITEMS)


class Checkpointer:
  """Saves and restores (state, data iterator, metadata) of one run directory."""

  def __init__(self, workdir: str, max_to_keep: int | None = 3, async_save: bool = True):
    self._manager = _manager(workdir, max_to_keep, async_save)
    self._remote = storage.is_remote(workdir)
    self._partial_saves_removed = False

  @property
  def _directory(self) -> str:
    return str(self._manager.directory)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def reload(self) -> None:
    """Sees steps that other processes saved, moved or deleted since this one was opened."""
    self._manager.reload()

  def step_directory(self, step: int):
    return self._manager.directory / str(step)

  def save(self, step: int, state: Any, data_iter_state: dict | None, meta: dict) -> None:
    if not self._partial_saves_removed:  # before this process's first save: none is in flight
      self.remove_partial_saves()
      self._partial_saves_removed = True
    self._empty_trash()
    if data_iter_state is not None:
      # Multi-process: every process's own position (orbax writes JSON from process 0 only).
      data_iter_state = distributed.gather_iterator_states(data_iter_state)
    meta = _with_digest(meta, state, data_iter_state)
    items = {'state': ocp.args.StandardSave(state), 'meta': ocp.args.JsonSave(meta)}
    if data_iter_state is not None:
      items['data_iter'] = ocp.args.JsonSave(data_iter_state)
    self._manager.save(step, args=ocp.args.Composite(**items))

  def restore(
    self, step: int, state_template: Any, with_data_iter: bool = True, meta: dict | None = None
  ):
    """-> (state laid out like `state_template` (arrays or ShapeDtypeStructs), iterator state),
    checked against the step's digests; raises DamagedCheckpoint when they differ or the files
    cannot be read."""
    meta = self.meta(step) if meta is None else meta  # `meta(step)`'s, already checked
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_template)
    items = {'state': ocp.args.StandardRestore(abstract)}
    if with_data_iter:
      items['data_iter'] = ocp.args.JsonRestore()
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    except ValueError as e:
      if 'tree structures do not match' not in str(e) and 'shape' not in str(e):
        raise self._damaged(step, e) from e
      raise ValueError(
        f'the checkpoint of step {step} in {self._manager.directory} does not fit this config '
        '(other model, sizes or classes): pass the config the run was trained with; it is '
        'saved in run.json beside checkpoints/.'
      ) from e
    except Exception as e:  # pylint: disable=broad-except  # any failure to read the files
      raise self._damaged(step, e) from e
    self._verify(step, meta.get('digest'), restored['state'], restored.get('data_iter'))
    if not with_data_iter:
      return restored['state'], None
    return restored['state'], distributed.own_iterator_state(restored.get('data_iter'))

  def restore_newest(
    self, template_fn: Callable[[dict], Any], with_data_iter: bool = True, move_damaged=False
  ) -> tuple[int, Any, Any, dict] | None:
    """-> (step, state, iterator state, metadata) of the newest intact step; None if none is saved.

    `template_fn(metadata)` gives the state template. A damaged step is skipped with a warning
    (and moved into checkpoints/damaged/ with `move_damaged`); a step removed while it is read
    (a running training's `max_to_keep`) sends the reader to the newest step again. When every
    step is damaged, DamagedCheckpoint names them all.
    """
    damaged, removed = {}, 0
    while removed <= _MAX_REMOVED_WHILE_READING:
      self.reload()
      steps = [s for s in sorted(self.all_steps(), reverse=True) if s not in damaged]
      if not steps:
        break
      step = steps[0]
      try:
        meta = self.meta(step)
        state, iter_state = self.restore(step, template_fn(meta), with_data_iter, meta)
        return step, state, iter_state, meta
      except DamagedCheckpoint as e:
        if not self.step_directory(step).exists():
          removed += 1
          continue
        damaged[step] = e.cause
        where = self.move_aside(step) if move_damaged else None
        logging.warning('%s; %s', e, f'moved to {where}' if where else 'trying the previous step')
    if damaged:
      causes = '; '.join(f'step {k}: {v}' for k, v in damaged.items())
      raise DamagedCheckpoint(
        min(damaged), self._manager.directory, f'no intact step is left ({causes})'
      )
    return None

  def _damaged(self, step: int, error: BaseException) -> DamagedCheckpoint:
    if not self.step_directory(step).exists():
      return DamagedCheckpoint(step, self._manager.directory, 'its directory was removed')
    return DamagedCheckpoint(step, self._manager.directory, _first_line(error))

  def _verify(self, step: int, digest: dict | None, state: Any, data_iter: Any) -> None:
    if digest is None:  # saved before digests existed: nothing to check against
      logging.warning('Checkpoint step %d has no digest (an older run): not verified.', step)
      return
    if 'data_iter' in digest and data_iter is not None:
      if _json_digest(data_iter) != digest['data_iter']:
        raise DamagedCheckpoint(step, self._manager.directory, 'the data position differs')
    got = state_digest(state)
    bad = [k for k in digest['state'] if got.get(k) != digest['state'][k]]
    if bad or set(got) != set(digest['state']):
      raise DamagedCheckpoint(
        step,
        self._manager.directory,
        f'{len(bad)} of {len(got)} arrays differ from what was saved, first {bad[:1]}',
      )

  def move_aside(self, step: int) -> str:
    """Renames a damaged step into checkpoints/damaged/ (process 0; on a bucket: copies, then
    deletes it); -> its new path."""
    target = self._manager.directory / DAMAGED / str(step)
    n = 1
    while target.exists():
      target, n = self._manager.directory / DAMAGED / f'{step}.{n}', n + 1
    if jax.process_count() > 1:  # nobody reads the step while it moves
      multihost_utils.sync_global_devices(f'move aside {step}')
    if jax.process_index() == 0 and self._remote:
      source = str(self.step_directory(step))
      storage.copy_folder(source, str(target))
      storage.rmtree(source)
    elif jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      self.step_directory(step).rename(target)
    self.reload()
    return str(target)

  def _partial_save_paths(self) -> list:
    # Unfinished step directories as orbax sees them (renamed-on-commit locally; without
    # commit_success.txt on GCS), restricted to step names so nothing else is ever touched.
    found = ocp.path.step.all_temporary_paths(
      self._manager.directory, atomicity_options=orbax_storage.atomicity_options(self._directory)
    )
    paths = [t.get() for t in found]
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
    """The step's run metadata, checked against its own digest (DamagedCheckpoint if not)."""
    try:
      meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
      meta = meta['meta']
      if not isinstance(meta, dict):
        raise ValueError(f'the metadata is a {type(meta).__name__}, not an object')
    except Exception as e:  # pylint: disable=broad-except  # unreadable or garbled JSON
      raise self._damaged(step, e) from e
    digest = meta.get('digest')
    if digest is not None and _json_digest({k: v for k, v in meta.items() if k != 'digest'}) != (
      digest.get('meta')
    ):
      raise DamagedCheckpoint(step, self._manager.directory, 'its metadata was altered')
    return meta

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
