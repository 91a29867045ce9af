"""Sweeps: every combination of variants and config values, trained with several seeds,
evaluated, and summarised with confidence intervals and significance tests (docs/sweeps.md).

  python -m jaxpr_gan.sweep --config configs/dcam.py:quick --workdir W --seeds 3 \
    [--variants ',+no_cl,configs/stargan.py:quick'] [--set loss.lambda_rec=10,5 ...] \
    [--override eval.num_identities=10 ...]

Points are the product of the --variants entries and of each --set's values; each (point, seed)
trains in W/<point slug>/seed_<s> with config.seed = s (the data order, config.data.seed, is
shared) and is evaluated there. W/sweep.json holds the plan; a rerun continues where the last one
stopped. W/results.json and W/results.md are rewritten after every point. W may be a gs:// or
s3:// URL (jaxpr_gan.storage): the sweep's own files are read and written there whole.
"""

from collections.abc import Mapping, Sequence
import json
import os
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections

from jaxpr_gan import checkpointing
from jaxpr_gan import cli
from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan import stats
from jaxpr_gan import storage
from jaxpr_gan import sweep_points
from jaxpr_gan import workdir_lock
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.training import loop

MAIN_METRICS = ('improvement_rate', 'psnr_improvement_rate', 'paired_l1', 'psnr', 'ssim')


def check_plan(workdir: str, plan: dict) -> None:
  """Writes W/sweep.json, or checks that the one there holds the same plan."""
  path = storage.join(workdir, 'sweep.json')
  if not storage.exists(path):
    files.make_writable_folder(workdir, 'the sweep folder', '--workdir')
    files.write_json(path, plan)
    return
  saved = json.loads(storage.read_text(path))
  differ = [k for k in sorted(set(saved) | set(plan)) if saved.get(k) != plan.get(k)]
  if differ:
    raise errors.BadInput(
      f'{path} holds another plan (its {", ".join(differ)} differ): rerun with the settings it '
      'records, or pass a new --workdir'
    )


# How a point's seeds train where --seed_mode is 'auto', by backend. On the CPU one run after
# another is faster than one vmapped program (python -m jaxpr_gan.tools.bench_seeds,
# docs/benchmarks.md); on GPU and TPU a quick config leaves most of the device idle and the
# vmapped program should win (not measured here: no accelerator was at hand).
SEED_MODE = {'cpu': 'sequential', 'gpu': 'vmap', 'tpu': 'vmap'}
SEED_MODES = ('auto', 'sequential', 'vmap')


def _newest_step(workdir: str) -> int:
  folder = storage.join(workdir, 'checkpoints')
  names = storage.listdir(folder) if storage.isdir(folder) else []
  return max((int(n) for n in names if n.isdigit()), default=0)


class Stopped(Exception):
  """A run stopped before its last step (SIGTERM: loop.train saved it and returned)."""


def _check_trained(workdirs: Sequence[str], final: int) -> None:
  short = [w for w in workdirs if _newest_step(w) < final]
  if short:
    raise Stopped(
      f'{", ".join(short)} stopped before step {final} (SIGTERM); its checkpoint is saved: '
      'rerun the same command to continue the sweep.'
    )


def _together(workdirs: Sequence[str], seeds: Sequence[int], mode: str) -> bool:
  """Whether these seeds train in one vmapped program: mode (SEED_MODE of the default backend
  for 'auto') is 'vmap' and every workdir is at the same step."""
  mode = SEED_MODE.get(jax.default_backend(), 'sequential') if mode == 'auto' else mode
  return mode == 'vmap' and len(seeds) > 1 and len({_newest_step(w) for w in workdirs}) == 1


def train_seeds(
  config: ml_collections.ConfigDict,
  workdirs: Sequence[str],
  seeds: Sequence[int],
  mode: str = 'auto',
) -> None:
  """Trains `config` once per seed, each in its workdir (resuming from its checkpoints): in one
  vmapped program (loop.train_seeds; see _together) or one after another in this process,
  sharing the compiled steps. 'auto': SEED_MODE of the default backend."""
  if _together(workdirs, seeds, mode):
    loop.train_seeds(config, workdirs, seeds)
    return
  for workdir, seed in zip(workdirs, seeds):
    seeded = config.copy_and_resolve_references()
    seeded.seed = seed  # the data order, config.data.seed, stays
    loop.train(seeded, workdir)


def saved_metrics(workdir: str) -> dict | None:
  """workdir/eval/metrics.json, None without one."""
  try:
    return json.loads(storage.read_text(storage.join(workdir, 'eval', 'metrics.json')))
  except (OSError, ValueError):
    return None


def flat_metrics(metrics: Mapping, prefix: str = '') -> dict[str, float]:
  """The numbers of a metrics.json, nested ones with dotted names; not the step, the counts,
  the run's config or the list of non-finite values."""
  out = {}
  for key, value in metrics.items():
    name = f'{prefix}{key}'
    if isinstance(value, Mapping) and key not in ('config', 'nonfinite'):
      out.update(flat_metrics(value, f'{name}.'))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
      if key != 'step' and not key.startswith('num_'):
        out[name] = float(value)
  return out


def duration(seconds: float) -> str:
  """'45 s', '3 min 5 s', '1 h 2 min'."""
  s = int(round(seconds))
  return (
    f'{s} s'
    if s < 60
    else f'{s // 60} min {s % 60} s'
    if s < 3600
    else f'{s // 3600} h {s % 3600 // 60} min'
  )


def _main_text(values: Mapping[str, Any], main: Sequence[str]) -> str:
  shown = [m for m in main if m in values] or list(values)[:5]
  return ', '.join(f'{m} {values[m]}' for m in shown)


class Progress:
  """The `[k/K] ...` lines, with the time of each item and the ETA from this session's pace
  (the mean time of the items it worked on)."""

  def __init__(self, total: int, prefix: str = ''):
    self.total, self.prefix, self.done, self.worked, self.spent = total, prefix, 0, 0, 0.0

  def say(self, text: str, seconds: float | None) -> None:
    """One finished item; `seconds` None: it was finished by an earlier run."""
    self.done += 1
    self.worked += seconds is not None
    self.spent += seconds or 0.0
    pace = self.spent / max(self.worked, 1)
    eta = duration(pace * (self.total - self.done)) if self.worked else '?'
    took = 'finished earlier' if seconds is None else duration(seconds)
    print(f'{self.prefix}[{self.done}/{self.total}] {text} ({took}; ETA {eta})', flush=True)


def _run_point(
  point: sweep_points.Point, workdir: str, seeds: list[int], progress: Progress, mode: str
):
  """Trains and evaluates the unfinished seeds of `point`; -> ({seed: flat metrics}, whether
  any seed was unfinished)."""
  final = point.config.num_train_steps
  dirs = {s: storage.join(workdir, point.slug, f'seed_{s}') for s in seeds}
  todo = [s for s in seeds if (saved_metrics(dirs[s]) or {}).get('step') != final]
  untrained = [
    s for s in todo if not storage.isdir(storage.join(dirs[s], 'checkpoints', f'{final}'))
  ]
  # Seeds trained one after another are evaluated as each finishes, so every run gets its line.
  together = _together([dirs[s] for s in untrained], untrained, mode)
  start = time.monotonic()
  if together:
    train_seeds(point.config, [dirs[s] for s in untrained], untrained, 'vmap')
    _check_trained([dirs[s] for s in untrained], final)
  share = (time.monotonic() - start) / max(len(todo), 1)
  values = {}
  for s in seeds:
    took = None
    if s in todo:
      begin = time.monotonic()
      if s in untrained and not together:
        train_seeds(point.config, [dirs[s]], [s], 'sequential')
        _check_trained([dirs[s]], final)
      evaluate.evaluate(dirs[s])
      took = share + time.monotonic() - begin
    values[s] = flat_metrics(saved_metrics(dirs[s]))
    shown = {k: f'{v:.4f}' for k, v in values[s].items()}
    progress.say(f'{point.name} seed {s}: {_main_text(shown, MAIN_METRICS)}', took)
  return values, bool(todo)


def run(
  config_file: str,
  variant: str,
  workdir: str,
  seeds: int,
  sets: Sequence[str] = (),
  variants: str | Sequence[str] = ('',),
  fixed: Mapping[str, Any] | Sequence[str] = (),
  seed_mode: str = 'auto',
) -> dict:
  """Trains and evaluates every (point, seed) not finished yet; -> the results (results.json).

  sets: 'KEY=V1,V2' strings; variants: the --variants entries (a list or the comma-separated
  text); fixed: overrides of every point, {key: value} or 'KEY=VALUE' strings (--override);
  seed_mode: how a point's seeds train (train_seeds). Raises Stopped when SIGTERM stopped a
  run (saved; nothing of it evaluated)."""
  if seed_mode not in SEED_MODES:
    raise errors.BadInput(f'--seed_mode {seed_mode!r}: use one of {SEED_MODES}')
  if seeds < 1:
    raise errors.BadInput(f'--seeds {seeds}: train at least one seed')
  files.check_folder(workdir, '--workdir', may_create=True)  # gs://, s3://: reachable
  fixed = dict(fixed) if isinstance(fixed, Mapping) else dict(map(sweep_points.pair, fixed))
  points = sweep_points.make_points(config_file, variant, sets, variants, fixed)
  sweep_points.validate(points)
  config = f'{os.path.normpath(config_file)}:{variant}'
  plan = dict(config=config, fixed=fixed, seeds=list(range(seeds)))
  plan = json.loads(files.dumps_json(dict(plan, points=[p.describe() for p in points])))
  check_plan(workdir, plan)
  with workdir_lock.held(workdir):
    runs, points_done = Progress(len(points) * seeds), Progress(len(points), 'point ')
    values = {}
    for point in points:
      begin = time.monotonic()
      values[point.name], ran = _run_point(point, workdir, list(range(seeds)), runs, seed_mode)
      results = write_results(workdir, plan['points'], values)
      summary = results['points'][len(values) - 1]['metrics']
      shown = {m: f'{s["mean"]:.4f} ± {stats.number(s["ci95"])}' for m, s in summary.items()}
      took = time.monotonic() - begin if ran else None
      points_done.say(f'{point.name}: {_main_text(shown, MAIN_METRICS)}', took)
  return results


def write_results(
  workdir: str,
  points: Sequence[Mapping],
  values: Mapping[str, Mapping[int, Mapping[str, float]]],
  main_metrics: Sequence[str] = MAIN_METRICS,
  alpha: float = 0.05,
) -> dict:
  """Writes W/results.json and W/results.md from each point's per-seed metrics; -> the results.

  points: the plan's point descriptions (name, overrides, ...), in order; values: {point name:
  {seed: {metric: value}}}, points without values yet are listed without metrics."""
  results = stats.summarise(points, values, alpha)
  present = [m for m in main_metrics if m in results['comparisons']]
  results['main_metrics'] = present or sorted(results['comparisons'])[:5]
  files.write_json(storage.join(workdir, 'results.json'), results)
  storage.write_text(storage.join(workdir, 'results.md'), stats.markdown(results))
  return results


def _define_flags() -> None:
  flags.DEFINE_string('config', None, 'The config file and its variant: FILE.py[:VARIANT].')
  flags.DEFINE_string('workdir', None, 'The sweep folder: a run per point and seed, results.')
  flags.DEFINE_integer('seeds', 3, 'Seeds per point: config.seed = 0, ..., N - 1.')
  flags.DEFINE_string('variants', '', "Comma-separated: '', +MOD, VARIANT or FILE.py[:VARIANT].")
  flags.DEFINE_multi_string('set', [], 'KEY=V1,V2,...: a point per value (their product).')
  flags.DEFINE_multi_string('override', [], 'KEY=VALUE set on every point (not a point).')
  flags.DEFINE_enum('seed_mode', 'auto', SEED_MODES, "A point's seeds: vmapped or in turn.")
  flags.mark_flags_as_required(['config', 'workdir'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  config_file, _, variant = f.config.partition(':')
  checkpointing.quiet_orbax_logging()
  try:
    run(config_file, variant, f.workdir, f.seeds, f.set, f.variants, f.override, f.seed_mode)
  except Stopped as e:  # exit 0, as train.py after SIGTERM
    logging.warning('%s', e)


if __name__ == '__main__':
  _define_flags()
  cli.run(main)
