"""What each run of the loop writes: its workdir's checkpoints, run.json, metrics and samples.

A plain run has one `Output`. Seeds trained in one vmapped program (`loop.train_seeds`) have one
each, so that every seed's workdir is an ordinary run: eval.py, export and resume read it as they
read any other. A state with a seed axis is read seed by seed (`part`).
"""

import dataclasses
import os
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np

from jaxpr_gan import checkpointing
from jaxpr_gan import errors
from jaxpr_gan import events
from jaxpr_gan import files
from jaxpr_gan import images
from jaxpr_gan import run_config
from jaxpr_gan.training import samples as samples_lib
from jaxpr_gan.training import state as state_lib


class NonFiniteError(FloatingPointError):
  """Too many consecutive updates with a non-finite loss or gradient."""


def check_nonfinite(
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


@dataclasses.dataclass
class Output:
  """One run's workdir, its config (its own seed), checkpointer, metric writer and metadata."""

  workdir: str
  config: ml_collections.ConfigDict
  ckpt: checkpointing.Checkpointer
  index: int | None = None  # its seed's position on the state's seed axis; None: no axis
  writer: Any = None
  meta: dict = dataclasses.field(default_factory=dict)

  def part(self, tree):
    """This run's part of a state or metrics with a seed axis (all of it without one)."""
    return tree if self.index is None else jax.tree.map(lambda x: x[self.index], tree)


def restore(output: Output, template, data_iter, class_names, with_data_iter: bool = True):
  """-> (step, state, data-iterator state, saved metadata) of the newest intact checkpoint, or
  None. Damaged steps are moved into checkpoints/damaged/ (checkpointing.restore_newest)."""

  def checked_template(saved: dict):
    if saved.get('class_names') != class_names:
      raise errors.ConfigError(
        f'{output.workdir} holds a run on classes {saved.get("class_names")} but the data '
        f'now has {class_names}; use a new --workdir.'
      )
    return template

  found = output.ckpt.restore_newest(
    checked_template, move_damaged=True, with_data_iter=with_data_iter
  )
  if found is not None:
    logging.info('Resumed from %s at step %d.', output.workdir, found[0])
    found[3].pop('digest', None)
  return found


def open_writer(output: Output, start: int, is_chief: bool) -> None:
  """Writes run.json (the chief) and opens the metric writers; a new run's HParams are every
  config key, dotted (loss.lambda_rec), values other than numbers, strings and flags as text.
  A gs:// or s3:// workdir's events are written locally and mirrored there (events)."""
  if is_chief:
    files.write_json(os.path.join(output.workdir, 'run.json'), output.meta)
  writer = events.create_writer(output.workdir, just_logging=not is_chief)
  if start == 0:
    writer.write_hparams(
      {
        k: v if isinstance(v, (int, float, str, bool)) else str(v)
        for k, v in run_config.flatten(output.config).items()
      }
    )
  output.writer = writer


def summarise(sums: dict) -> tuple[dict[str, float], list[str]]:
  """-> (means over finite values, names with non-finite values); `*nonfinite_steps` are sums."""
  means, bad = {}, []
  for k, (total, finite, nonfinite) in sums.items():
    means[k] = float(total) if k.endswith('nonfinite_steps') else float(total) / max(int(finite), 1)
    if nonfinite:
      bad.append(k)
  return means, sorted(bad)


def log(outputs: list[Output], state, done: int, sums: dict, skipped: int) -> None:
  """Each run's metric means since the last log; stops at too many non-finite updates."""
  host_sums, runs_all = jax.device_get((sums, state.nonfinite_run))
  for out in outputs:
    host, bad = summarise(out.part(host_sums))
    runs = {k: int(np.asarray(v)) for k, v in out.part(runs_all).items()}
    check_nonfinite(done, runs, bad, out.config.max_nonfinite_steps, out.ckpt.latest_step())
    if bad:
      logging.warning('Step %d: non-finite %s; those updates were skipped.', done, bad)
    host['data/skipped_images'] = float(skipped)
    out.writer.write_scalars(done, host)
    events.sync(out.writer)


def sample(outputs: list[Output], sample_cells, faces, state, done: int, is_chief: bool) -> None:
  # Every process runs the translation (its program spans every device); the chief writes.
  for out in outputs:
    params = state_lib.generator_params(out.part(state))
    grid = samples_lib.sample_grid(sample_cells, params, faces)
    if is_chief:
      images.save_png(os.path.join(out.workdir, 'samples', f'step_{done:07d}.png'), grid)
      out.writer.write_images(done, {'samples': grid[None]})


def checkpoint(outputs: list[Output], state, done: int, data_iter) -> None:
  """Saves each run's state at `done` unless its last updates were non-finite (the newest
  checkpoint stays the last good state)."""
  runs_all = jax.device_get(state.nonfinite_run)
  for out in outputs:
    runs = {k: int(np.asarray(v)) for k, v in out.part(runs_all).items()}
    if any(runs.values()):
      check_nonfinite(done, runs, [], out.config.max_nonfinite_steps, out.ckpt.latest_step())
      logging.warning('Step %d: not saved, the last updates were non-finite (%s).', done, runs)
    elif out.ckpt.latest_step() != done:
      out.ckpt.save(done, out.part(state), data_iter.get_state(), out.meta)
    events.sync(out.writer)


def close(outputs: list[Output]) -> None:
  """Lets the saves in flight finish, then closes the checkpointers and flushes the writers."""
  for out in outputs:
    out.ckpt.wait()
    out.ckpt.close()
    if out.writer is not None:
      out.writer.flush()
      events.sync(out.writer)
