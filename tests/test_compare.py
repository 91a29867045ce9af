"""Configs as dotted keys, their diff and hash; the compare table of runs; what eval records of
its config (the warning for a config that departs from the checkpoint's, the hash in
metrics.json and report.html, the scalars in TensorBoard) and training's HParams."""

import glob
import json
import logging
import os
import subprocess
import sys

import pytest

from configs import stargan as stargan_config
from jaxpr_gan import compare
from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan import registry
from jaxpr_gan import run_config
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.training import loop
from tests import conftest

NESTED = {'seed': 0, 'loss': {'lambda_rec': 10.0, 'adversarial': 'wgan_gp'}, 'styles': ('a', 'b')}


def test_flatten_dots_nested_keys_and_keeps_sequences_and_empty_groups():
  flat = run_config.flatten(dict(NESTED, generator={'block_args': {}, 'conv_dim': 4}))
  assert flat == {
    'seed': 0,
    'loss.lambda_rec': 10.0,
    'loss.adversarial': 'wgan_gp',
    'styles': ('a', 'b'),
    'generator.block_args': {},
    'generator.conv_dim': 4,
  }
  config = stargan_config.get_config('tiny')  # a ConfigDict flattens as its dict does
  assert run_config.flatten(config) == run_config.flatten(config.to_dict())
  assert run_config.flatten(config)['loss.lambda_rec'] == 10.0


def test_diff_lists_changed_and_one_sided_keys_and_a_tuple_equals_its_list():
  other = {'loss': {'lambda_rec': 1.0, 'adversarial': 'wgan_gp'}, 'styles': ['a', 'b'], 'new': 1}
  assert run_config.diff(NESTED, other) == [
    ('loss.lambda_rec', 10.0, 1.0),
    ('new', run_config.ABSENT, 1),
    ('seed', 0, run_config.ABSENT),
  ]
  assert repr(run_config.ABSENT) == '<absent>'
  assert run_config.diff(NESTED, NESTED) == []


def test_config_hash_is_stable_under_key_order_and_changes_with_one_value():
  h = run_config.config_hash(NESTED)
  assert len(h) == 12 and int(h, 16) >= 0
  reordered = {'styles': ['a', 'b'], 'loss': {'adversarial': 'wgan_gp', 'lambda_rec': 10.0}}
  assert run_config.config_hash(dict(reordered, seed=0)) == h
  assert run_config.config_hash(dict(NESTED, seed=1)) != h
  config = stargan_config.get_config('tiny')
  saved = json.loads(json.dumps(config.to_dict()))  # as run.json and the checkpoint hold it
  assert run_config.config_hash(config) == run_config.config_hash(saved)


def _fake_run(folder, lambda_rec: float, seed: int, metrics: dict | None):
  """A run directory as train.py and eval.py leave it, written by hand: run.json, eval/."""
  config = stargan_config.get_config('tiny')
  config.loss.lambda_rec, config.seed = lambda_rec, seed
  os.makedirs(os.path.join(folder, 'eval'))
  files.write_json(os.path.join(folder, 'run.json'), {'config': config.to_dict()})
  if metrics is not None:
    metrics = dict(metrics, config=config.to_dict(), step=4)
    files.write_json(os.path.join(folder, 'eval', 'metrics.json'), metrics)
  return str(folder)


@pytest.fixture
def fake_runs(tmp_path):
  scores = dict(improvement_rate=0.923456, psnr=30.4321, ssim=0.94, same_class={'psnr': 41.25})
  return [
    _fake_run(tmp_path / 'runs' / 'a', 10.0, 0, scores),
    _fake_run(tmp_path / 'runs' / 'b', 1.0, 0, dict(scores, improvement_rate=0.5, psnr=24)),
    _fake_run(tmp_path / 'runs' / 'c', 10.0, 3, None),
  ]


def test_table_shows_the_differing_keys_the_metrics_and_the_runs_not_evaluated(fake_runs):
  got = compare.table(compare.load_all(fake_runs))
  assert got == (
    '| run | loss.lambda_rec | seed | improvement_rate | psnr  | ssim |\n'
    '|-----|-----------------|------|------------------|-------|------|\n'
    '| a   | 10              | 0    | 0.9235           | 30.43 | 0.94 |\n'
    '| b   | 1               | 0    | 0.5              | 24    | 0.94 |\n'
    '| c   | 10              | 3    | —                | —     | —    |\n'
    '\n'
    '- c: not evaluated (no eval/metrics.json)\n'
  )
  chosen = compare.table(compare.load_all(fake_runs[:2]), ['same_class.psnr', 'step'])
  assert chosen.splitlines()[0] == '| run | loss.lambda_rec | same_class.psnr | step |'
  assert chosen.splitlines()[2] == '| a   | 10              | 41.25           | 4    |'
  with pytest.raises(errors.BadInput, match='psnrr in no run'):
    compare.table(compare.load_all(fake_runs), ['psnrr'])


def test_runs_by_glob_in_order_once_and_one_line_errors(fake_runs, tmp_path):
  os.makedirs(tmp_path / 'runs' / 'not_a_run')
  runs = str(tmp_path / 'runs')
  assert compare.expand([f'{runs}/*', fake_runs[0]]) == fake_runs  # sorted, each once
  assert compare.expand([f'{runs}/[b]']) == fake_runs[1:2]
  with pytest.raises(errors.NotFound, match=r'runs/x\* matches no run directory'):
    compare.expand([f'{runs}/x*'])
  with pytest.raises(errors.NotFound, match='not_a_run holds no run.json'):
    compare.expand([f'{runs}/not_a_run'])
  # Two runs with the same folder name are named by their paths.
  other = _fake_run(tmp_path / 'other' / 'a', 10.0, 0, None)
  assert [r.name for r in compare.load_all([fake_runs[0], other])] == [fake_runs[0], other]


def _compare_command(args: list[str], cwd: str):
  return subprocess.run(
    [sys.executable, '-m', 'jaxpr_gan.compare', *args],
    cwd=cwd,
    env=dict(conftest.subprocess_env(1), PYTHONPATH=conftest.ROOT),
    capture_output=True,
    text=True,
    timeout=300,
  )


def test_command_line_writes_the_table_and_names_a_pattern_that_matches_nothing(
  fake_runs, tmp_path
):
  result = _compare_command(['runs/*', '--out', 'out/table.md'], str(tmp_path))
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout == (tmp_path / 'out' / 'table.md').read_text()
  assert result.stdout == compare.table(compare.load_all(fake_runs))
  result = _compare_command(['runs/*', 'runz/*'], str(tmp_path))
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  errors_ = [l for l in result.stderr.splitlines() if l.startswith('error: ')]
  assert errors_ == ['error: runz/* matches no run directory (a folder with run.json)']


def _tensorboard(folder: str) -> dict[str, list]:
  """{tag: [(step, event value)]} of every events file in `folder` (not below it)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  found = {}
  for path in sorted(glob.glob(os.path.join(folder, 'events.out.tfevents.*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        found.setdefault(value.tag, []).append((event.step, value))
  return found


def test_eval_warns_of_a_changed_config_and_records_its_hash_in_every_output(tmp_path, caplog):
  from tensorboard.plugins.hparams import plugin_data_pb2  # pylint: disable=g-import-not-at-top
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path / 'run')
  loop.train(stargan_config.get_config('tiny'), workdir)  # checkpoints at steps 2 and 4
  config = stargan_config.get_config('tiny')
  saved_identities = config.eval.num_identities
  config.loss.lambda_rec = 1.0
  config.eval.num_identities = 2
  caplog.set_level(logging.WARNING)
  report = evaluate.evaluate(workdir, config=config)
  warnings = [r.getMessage() for r in caplog.records]
  warnings = [w for w in warnings if 'differs from the one saved' in w]
  assert len(warnings) == 1, warnings
  assert 'config.loss.lambda_rec: checkpoint 10.0, given 1.0' in warnings[0]
  assert f'config.eval.num_identities: checkpoint {saved_identities}, given 2' in warnings[0]

  with open(os.path.join(workdir, 'eval', 'metrics.json')) as f:
    metrics = json.load(f)
  want = run_config.config_hash(registry.complete(config))
  assert metrics['config_hash'] == report['config_hash'] == want
  assert run_config.diff(metrics['config'], registry.complete(config)) == []
  with open(os.path.join(workdir, 'eval', 'report.html')) as f:
    page = f.read()
  assert want in page and 'config.loss.lambda_rec' in page

  events = _tensorboard(workdir)  # the training's file and the evaluation's
  [(step, value)] = events['eval/improvement_rate']
  assert step == 4
  assert float(tensor_util.make_ndarray(value.tensor)) == pytest.approx(report['improvement_rate'])
  assert 'eval/same_class.psnr' in events and 'eval/config.seed' not in events
  [(_, start)] = events['_hparams_/session_start_info']
  content = start.metadata.plugin_data.content
  hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
  assert hparams['loss.lambda_rec'].number_value == 10.0
  assert hparams['data.styles'].string_value == "('photo', 'anime')"
