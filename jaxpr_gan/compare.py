"""Runs side by side: python -m jaxpr_gan.compare 'workdirs/stargan_*' workdirs/dcam_quick

Each argument is a run directory (one with run.json, as train.py writes it) or a glob pattern
(quote it) naming several. Prints one markdown table, one row per run: its name, the config keys
whose values differ among the runs (dotted, one column each, the keys equal in every run left
out) and the metrics of its eval/metrics.json (`--metrics a,b.c`, nested ones dotted; default:
`DEFAULT_METRICS`, those found). A run not yet evaluated has '—' in its metric cells and a note
beneath the table. `--out FILE` writes the same markdown to FILE. Configs are compared after
`registry.complete`, so an older run's missing keys count at their defaults. Run directories,
patterns and --out may be gs:// or s3:// URLs (jaxpr_gan.storage); a pattern there is matched by
the store's listing.
"""

from collections.abc import Sequence
import dataclasses
import glob
import json
import os
from typing import Any

from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan import registry
from jaxpr_gan import run_config
from jaxpr_gan import storage
from jaxpr_gan import storage_check

DEFAULT_METRICS = ('improvement_rate', 'psnr_improvement_rate', 'paired_l1', 'psnr', 'ssim')
MISSING = '—'


@dataclasses.dataclass(frozen=True)
class Run:
  name: str
  config: dict  # as run.json holds it
  metrics: dict | None  # eval/metrics.json; None when the run has not been evaluated


def expand(patterns: Sequence[str]) -> list[str]:
  """The run directories the arguments name, in order, each once: a glob pattern keeps the
  folders holding run.json. A pattern that matches none, or a path that is not a run, is a
  NotFound naming it."""
  found = []
  for pattern in patterns:
    storage_check.check_reachable(pattern)
    if glob.has_magic(pattern):
      paths = [p for p in _glob(pattern) if _is_run(p)]
      if not paths:
        raise errors.NotFound(f'{pattern} matches no run directory (a folder with run.json)')
    elif _is_run(pattern):
      paths = [pattern]
    else:
      what = 'holds no run.json' if storage.isdir(pattern) else 'does not exist'
      raise errors.NotFound(f'{pattern} {what}: give run directories that train.py wrote')
    found += [_normpath(p) for p in paths if _normpath(p) not in found]
  return found


def _glob(pattern: str) -> list[str]:
  """glob.glob, sorted; on a bucket the store's listing, as URLs."""
  if not storage.is_remote(pattern):
    return sorted(glob.glob(pattern))
  fs, path = storage.filesystem(pattern)
  protocol = storage.split(pattern)[0]
  return sorted(f'{protocol}://{p.rstrip("/")}' for p in fs.glob(path))


def _normpath(path: str) -> str:
  """os.path.normpath; a URL without its trailing slashes (normpath would merge its '//')."""
  return path.rstrip('/') if storage.is_remote(path) else os.path.normpath(path)


def _basename(path: str) -> str:
  return _normpath(path).rsplit('/', 1)[-1] if storage.is_remote(path) else os.path.basename(path)


def _is_run(path: str) -> bool:
  return _is_file(storage.join(path, 'run.json'))


def _read_json(path: str) -> dict:
  try:
    return json.loads(storage.read_text(path))
  except (OSError, ValueError) as e:
    raise errors.BadInput(f'cannot read {path}: {e}') from e


def _completed(config: dict) -> dict:
  """Today's keys at their defaults where an older run lacks them (as saved when that fails)."""
  try:
    return registry.complete(config).to_dict()
  except (errors.UserError, KeyError, TypeError, ValueError):
    return config


def load(path: str, name: str | None = None) -> Run:
  """The run in `path`: its config (from run.json) and its metrics (eval/metrics.json, if any)."""
  config = _read_json(storage.join(path, 'run.json')).get('config', {})
  metrics_path = storage.join(path, 'eval', 'metrics.json')
  metrics = _read_json(metrics_path) if _is_file(metrics_path) else None
  return Run(name or _basename(_normpath(path)), _completed(config), metrics)


def _is_file(path: str) -> bool:
  """os.path.isfile; on a bucket, whether the object exists."""
  return storage.exists(path) if storage.is_remote(path) else os.path.isfile(path)


def load_all(paths: Sequence[str]) -> list[Run]:
  """`load` of each path, named by its folder, or by its whole path where two folders share a
  name."""
  names = [_basename(_normpath(p)) for p in paths]
  if len(set(names)) < len(names):
    names = [_normpath(p) for p in paths]
  return [load(p, n) for p, n in zip(paths, names)]


def _cell(value: Any) -> str:
  """A value as a markdown cell: floats to 4 significant digits, lists comma-separated."""
  if value is run_config.ABSENT:
    return '(absent)'
  if isinstance(value, float):
    text = f'{value:.4g}'
  elif isinstance(value, (list, tuple)):
    text = ', '.join(_cell(v) for v in value)
  elif value is None:
    text = 'null'
  else:
    text = str(value)
  return text.replace('|', '\\|').replace('\n', ' ')


def differing_keys(runs: Sequence[Run]) -> list[str]:
  """The dotted config keys whose values are not the same in every run, sorted."""
  keys = set()
  for run in runs[1:]:
    keys.update(k for k, _, _ in run_config.diff(runs[0].config, run.config))
  return sorted(keys)


def _chosen(runs: Sequence[Run], metrics: Sequence[str] | None) -> list[str]:
  """`metrics`, each found in some run's metrics.json; by default DEFAULT_METRICS found."""
  known = set()
  for run in runs:
    if run.metrics is not None:
      known.update(run_config.flatten(run.metrics))
  if metrics is None:
    return [m for m in DEFAULT_METRICS if m in known]
  unknown = [m for m in metrics if m not in known]
  if known and unknown:
    numeric = sorted(k for k in known if not k.startswith('config.'))
    raise errors.BadInput(
      f"--metrics: {', '.join(unknown)} in no run's eval/metrics.json; found: {', '.join(numeric)}"
    )
  return list(metrics)


def table(runs: Sequence[Run], metrics: Sequence[str] | None = None) -> str:
  """The runs as a markdown table (run, the differing config keys, the metrics), with a note
  beneath for each run that has no eval/metrics.json."""
  keys, chosen = differing_keys(runs), _chosen(runs, metrics)
  header = ['run', *keys, *chosen]
  rows = []
  for run in runs:
    flat = run_config.flatten(run.config)
    scores = {} if run.metrics is None else run_config.flatten(run.metrics)
    rows.append(
      [
        _cell(run.name),
        *(_cell(flat.get(k, run_config.ABSENT)) for k in keys),
        *(_cell(scores[m]) if m in scores else MISSING for m in chosen),
      ]
    )
  widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

  def line(cells):
    return '| ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths)) + ' |'

  lines = [line(header), '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
  lines += [line(r) for r in rows]
  notes = [f'- {r.name}: not evaluated (no eval/metrics.json)' for r in runs if r.metrics is None]
  return '\n'.join(lines + ([''] + notes if notes else [])) + '\n'


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) < 2:
    raise app.UsageError('give run directories or glob patterns, e.g. "workdirs/stargan_*"')
  f = flags.FLAGS
  if f.out:  # gs://, s3://: whether the bucket can be used
    files.check_folder(os.path.dirname(f.out) or '.', '--out', may_create=True)
  text = table(load_all(expand(argv[1:])), f.metrics)
  print(text, end='')
  if f.out:
    storage.makedirs(os.path.dirname(f.out) or '.')
    files.write_text(f.out, text)


if __name__ == '__main__':
  from absl import flags as _flags  # pylint: disable=g-import-not-at-top

  from jaxpr_gan import cli  # pylint: disable=g-import-not-at-top

  _flags.DEFINE_list('metrics', None, 'Metrics to show, comma-separated, nested ones dotted.')
  _flags.DEFINE_string('out', None, 'Also write the markdown table to this file.')
  cli.run(main)
