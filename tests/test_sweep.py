"""A sweep of the tiny StarGAN (2 points x 2 seeds): one run per (point, seed), the statistics
of results.json against the seeds' own metrics.json, resuming, and the mistakes refused before
anything trains."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from jaxpr_gan import errors
from jaxpr_gan import stats
from jaxpr_gan import sweep
from jaxpr_gan import sweep_points
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.training import loop
from tests import conftest

CONFIG = os.path.join(conftest.ROOT, 'configs', 'stargan.py')
SETS = ['loss.lambda_rec=10,5']
FIXED = {'eval.num_identities': 2}
SLUGS = ['tiny_loss.lambda_rec=10', 'tiny_loss.lambda_rec=5']


def _run(workdir, seeds=2, sets=SETS):
  return sweep.run(CONFIG, 'tiny', str(workdir), seeds, sets, [''], FIXED)


@pytest.fixture(scope='module')
def swept(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('sweep')
  return workdir, _run(workdir)


def _read(path):
  with open(path) as f:
    return json.load(f)


def test_every_point_and_seed_is_trained_evaluated_and_summarised(swept):
  workdir, results = swept
  assert _read(workdir / 'results.json') == json.loads(json.dumps(results))
  assert [p['name'] for p in results['points']] == [
    'tiny loss.lambda_rec=10',
    'tiny loss.lambda_rec=5',
  ]
  for point, slug in zip(results['points'], SLUGS):
    assert point['slug'] == slug and point['seeds'] == [0, 1]
    runs = [_read(workdir / slug / f'seed_{s}' / 'eval' / 'metrics.json') for s in (0, 1)]
    assert [r['step'] for r in runs] == [4, 4] and runs[0]['config']['seed'] == 0
    assert runs[1]['config']['seed'] == 1 and runs[1]['config']['data']['seed'] == 0
    for metric in ('paired_l1', 'psnr', 'ssim', 'same_class.paired_l1'):
      got = point['metrics'][metric]
      values = [sweep.flat_metrics(r)[metric] for r in runs]
      assert got['n'] == 2 and got['values'] == values
      assert got['mean'] == pytest.approx(np.mean(values))
      assert got['std'] == pytest.approx(np.std(values, ddof=1))
      half = scipy_stats.t.ppf(0.975, 1) * np.std(values, ddof=1) / np.sqrt(2)
      assert got['ci95'] == pytest.approx(half)
  assert results['comparisons']['paired_l1']['higher_is_better'] is False
  md = (workdir / 'results.md').read_text()
  for metric in sweep.MAIN_METRICS:
    assert f'## {metric} (' in md
  assert '| tiny loss.lambda_rec=5 |' in md and '## Significant differences' in md


def _refuse(*args, **kwargs):
  raise AssertionError('nothing should train or be evaluated')


def test_a_rerun_trains_nothing_and_gives_the_same_results(swept, monkeypatch, capsys):
  workdir, results = swept
  monkeypatch.setattr(loop, 'train', _refuse)
  monkeypatch.setattr(evaluate, 'evaluate', _refuse)
  assert _run(workdir) == results
  out = capsys.readouterr().out
  assert out.count('finished earlier') == 6  # 4 (point, seed) lines and 2 point lines


def test_a_lost_seed_is_trained_again_alone(swept, tmp_path, monkeypatch, capsys):
  workdir, results = swept
  copy = tmp_path / 'sweep'
  shutil.copytree(workdir, copy)
  lost = copy / SLUGS[1] / 'seed_1'
  shutil.rmtree(lost / 'eval')
  shutil.rmtree(lost / 'checkpoints' / '4')
  trained, train = [], loop.train
  monkeypatch.setattr(loop, 'train', lambda c, w: (trained.append((w, c.seed)), train(c, w))[1])
  again = _run(copy)
  assert trained == [(str(lost), 1)]
  assert _read(lost / 'eval' / 'metrics.json')['step'] == 4
  assert capsys.readouterr().out.count('finished earlier') == 4  # 3 seeds and the first point
  for got, want in zip(again['points'], results['points']):  # the resume is exact
    assert got['metrics']['paired_l1']['values'] == pytest.approx(
      want['metrics']['paired_l1']['values'], rel=1e-5
    )


def test_another_plan_in_the_same_folder_is_refused(swept):
  workdir, _ = swept
  with pytest.raises(errors.UserError, match=r'sweep.json holds another plan \(its seeds'):
    _run(workdir, seeds=3)
  with pytest.raises(errors.UserError, match='its points differ'):
    _run(workdir, sets=['loss.lambda_rec=10,2'])


@pytest.mark.parametrize(
  'sets,expected',
  [
    (['loss.lamda_rec=1,2'], 'did you mean config.loss.lambda_rec?'),
    (['batch_size=8,abc'], "config.batch_size = 'abc' is a str; expected a int"),
    (['generator=1'], 'config.generator is a group'),
    (['loss.lambda_rec'], 'expected KEY=VALUE'),
    (['data.image_size=24'], 'config.data.image_size = 24'),  # the config checks of training
  ],
)
def test_a_bad_set_is_one_error_before_anything_is_written(sets, expected, tmp_path):
  with pytest.raises(errors.UserError, match=expected.replace('?', r'\?')):
    _run(tmp_path / 'w', sets=sets)
  assert not (tmp_path / 'w').exists()


def test_points_from_variants_modifiers_and_another_config_file():
  dcam = os.path.join(conftest.ROOT, 'configs', 'dcam.py')
  sets = ['loss.cx_layers=(relu1_2,relu2_2),(relu2_2,)']
  points = sweep_points.make_points(dcam, 'tiny', sets, ',+no_cl', {'seed': 3})
  assert [p.name for p in points[:2]] == [
    'tiny loss.cx_layers=(relu1_2,relu2_2)',
    'tiny loss.cx_layers=(relu2_2,)',
  ]
  assert points[2].name.startswith('tiny+no_cl ') and points[2].config.loss.lambda_cx == 0.0
  assert points[3].overrides == {'loss.cx_layers': ('relu2_2',)}
  assert points[3].slug == 'tiny+no_cl_loss.cx_layers=_relu2_2_'
  assert {p.config.seed for p in points} == {3}
  with pytest.raises(errors.UserError, match=r'unknown key config.loss.cx_layers.*stargan.py'):
    sweep_points.make_points(dcam, 'tiny', ['loss.cx_layers=(relu1_2,)'], f',{CONFIG}:tiny')
  other = sweep_points.make_points(dcam, 'tiny', [], f',{CONFIG}:tiny')[1]
  assert other.name == 'stargan:tiny' and other.config.model == 'stargan'


def test_values_are_parsed_as_the_config_field_is_typed():
  assert sweep_points.split_top("1,(a,b),'x,y'") == ['1', '(a,b)', "'x,y'"]
  assert sweep_points.parse_value('10', 1.0) == 10.0 and isinstance(
    sweep_points.parse_value('10', 1.0), float
  )
  assert sweep_points.parse_value('true', False) is True
  assert sweep_points.parse_value('relu2_2', ('a',)) == ('relu2_2',)
  assert sweep_points.parse_value('12', 'x') == '12'
  assert sweep_points.parse_value("'hinge'", 'x') == 'hinge'


def test_the_command_line_says_a_bad_set_in_one_line(tmp_path):
  result = subprocess.run(
    [
      sys.executable,
      '-m',
      'jaxpr_gan.sweep',
      f'--config={CONFIG}:tiny',
      '--workdir=w',
      '--set=loss.lamda_rec=1,2',
    ],
    cwd=str(tmp_path),
    env=conftest.subprocess_env(1),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 2, result.stderr[-2000:]
  lines = [l for l in result.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1 and 'did you mean config.loss.lambda_rec' in lines[0], result.stderr
  assert 'Traceback' not in result.stderr and not (tmp_path / 'w').exists()


def test_results_of_synthetic_values_list_the_significant_differences(tmp_path):
  points = [{'name': n} for n in ('a', 'b', 'c')]
  values = {
    'a': {s: {'paired_l1': v} for s, v in enumerate([0.10, 0.11, 0.12])},
    'b': {s: {'paired_l1': v} for s, v in enumerate([0.20, 0.21, 0.22])},
    'c': {0: {'paired_l1': 0.3}},  # one seed: no interval, not compared
  }
  results = sweep.write_results(str(tmp_path), points, values)
  assert results['main_metrics'] == ['paired_l1']
  md = (tmp_path / 'results.md').read_text()
  assert '| c | 0.3 ± — | — | 1 |' in md
  assert '- paired_l1: a better than b by 0.1 (p ' in md
  pairs = results['comparisons']['paired_l1']['pairs']
  assert [p['p'] is None for p in pairs] == [False, True, True]
  assert (
    stats.summary([0.10, 0.11, 0.12])['ci95']
    == results['points'][0]['metrics']['paired_l1']['ci95']
  )
  assert points[2]['name'] == 'c' and results['points'][2]['seeds'] == [0]


def test_seed_modes_choose_one_vmapped_program_or_one_run_after_another(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(loop, 'train_seeds', lambda c, w, s: calls.append(('vmap', list(s))))
  monkeypatch.setattr(loop, 'train', lambda c, w: calls.append(('alone', c.seed)))
  config = sweep_points.load_config(CONFIG, 'tiny')
  dirs = [str(tmp_path / f'seed_{s}') for s in (0, 1)]
  sweep.train_seeds(config, dirs, [0, 1], 'vmap')
  sweep.train_seeds(config, dirs, [0, 1], 'auto')  # the CPU's measured choice
  os.makedirs(os.path.join(dirs[0], 'checkpoints', '2'))  # seeds at different steps
  sweep.train_seeds(config, dirs, [0, 1], 'vmap')
  assert sweep.SEED_MODE['cpu'] == 'sequential'
  assert calls == [('vmap', [0, 1])] + [('alone', 0), ('alone', 1)] * 2
  with pytest.raises(errors.UserError, match='--seed_mode'):
    sweep.run(CONFIG, 'tiny', str(tmp_path / 'w'), 2, seed_mode='vmapped')


def test_each_seed_is_evaluated_as_it_finishes_and_the_eta_follows_the_pace(
  tmp_path, monkeypatch, capsys
):
  calls, clock = [], [0.0]
  monkeypatch.setattr(sweep.time, 'monotonic', lambda: clock[0])

  def train(config, workdir):  # 60 s a seed
    calls.append(('train', config.seed))
    os.makedirs(os.path.join(workdir, 'checkpoints', str(final)))
    clock[0] += 60

  def evaluate_run(workdir):  # 15 s an evaluation
    calls.append(('eval', int(workdir[-1])))
    clock[0] += 15
    os.makedirs(os.path.join(workdir, 'eval'), exist_ok=True)
    with open(os.path.join(workdir, 'eval', 'metrics.json'), 'w') as f:
      json.dump({'step': final, 'paired_l1': 0.1}, f)

  monkeypatch.setattr(loop, 'train', train)
  monkeypatch.setattr(evaluate, 'evaluate', evaluate_run)
  point = sweep_points.make_points(CONFIG, 'tiny', [], [''], {})[0]
  final = point.config.num_train_steps
  progress = sweep.Progress(total=4)
  sweep._run_point(point, str(tmp_path), [0, 1, 2], progress, 'sequential')
  assert calls == [('train', 0), ('eval', 0), ('train', 1), ('eval', 1), ('train', 2), ('eval', 2)]
  lines = capsys.readouterr().out.splitlines()
  assert [line.split('(')[-1] for line in lines] == [
    '1 min 15 s; ETA 3 min 45 s)',
    '1 min 15 s; ETA 2 min 30 s)',
    '1 min 15 s; ETA 1 min 15 s)',
  ]


def test_a_run_stopped_by_sigterm_stops_the_sweep_before_evaluating(tmp_path, monkeypatch):
  calls = []

  def preempted_train(config, workdir):  # loop.train after SIGTERM: saved step 1, returned
    calls.append(('train', config.seed))
    os.makedirs(os.path.join(workdir, 'checkpoints', '1'))

  monkeypatch.setattr(loop, 'train', preempted_train)
  monkeypatch.setattr(evaluate, 'evaluate', lambda workdir: calls.append(('eval', workdir)))
  with pytest.raises(sweep.Stopped, match='stopped before step .* rerun the same command'):
    sweep.run(CONFIG, 'tiny', str(tmp_path / 'w'), 2, seed_mode='sequential')
  assert calls == [('train', 0)]
