"""eval.py's suite: skip notes, FID/KID/IS plumbing and cache, the judge, the HTML report."""

import functools
import json
import os

import jax
import numpy as np
import pytest

from configs import cyclegan as cyclegan_config
from configs import dcam as dcam_config
from configs import stargan as stargan_config
from configs import twocet as twocet_config
from input_pipeline import pipeline
from jaxpr_gan import registry
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.evaluation import judge
from jaxpr_gan.evaluation import restore
from jaxpr_gan.evaluation import suite
from jaxpr_gan.evaluation.metrics import distribution
from jaxpr_gan.evaluation.metrics import inception
from jaxpr_gan.training import state as state_lib


def _fresh(config):
  names = list(pipeline.make_source(config.data, 'train').class_names)
  objective = registry.build(config, len(names))
  state = jax.jit(functools.partial(state_lib.init_state, objective, config))()
  return objective, state_lib.generator_params(state), names


@pytest.mark.parametrize(
  'module',
  [dcam_config, cyclegan_config, twocet_config],
  ids=['conditional', 'two_domain', 'reference'],
)
def test_generated_sets_of_every_family(module):
  config = module.get_config('tiny')
  config.eval.fid_max_images = 12
  objective, g, names = _fresh(config)
  sets = suite.generated_sets(config, objective, g, names)
  for s in sets:
    assert s.images.shape == s.inputs.shape == (12, 16, 16, 3) and s.images.dtype == np.uint8
  if objective.family == 'conditional':  # 3 test faces x 4 other classes
    [s] = sets
    assert s.name == 'translation' and s.real_group is None
    assert sorted(set(s.targets)) == [0, 1, 2, 3, 4]
  elif objective.family == 'two_domain':
    assert [(s.name, s.targets, s.real_group) for s in sets] == [('a2b', None, 1), ('b2a', None, 0)]
  else:  # neutral test faces, each with one emotional reference (12 // 12)
    [s] = sets
    assert s.name == 'transfer' and s.real_group == 1 and set(s.targets) <= {1, 2, 3, 4}


def test_without_files_every_metric_says_which_key_to_set(tmp_path):
  config = dcam_config.get_config('tiny')
  workdir = str(tmp_path / 'run')
  restore.write_run(config, ['neutral', 'happy', 'sad', 'angry', 'surprised'], workdir)
  report = evaluate.evaluate(workdir, config=config)
  assert 'config.eval.inception_weights' in report['distribution']['skipped']
  assert 'config.eval.judge_dir' in report['judge']['skipped']
  assert 'config.eval.lpips_backbone' in report['lpips']['skipped']
  assert report['masks'] == 'masks.png'  # DCAM-GAN has an attention mask
  out = os.path.join(workdir, 'eval')
  with open(os.path.join(out, 'metrics.json')) as f:
    assert json.load(f)['distribution'] == report['distribution']
  with open(os.path.join(out, 'report.html')) as f:
    page = f.read()
  assert 'config.eval.inception_weights' in page and '<td>paired_l1</td>' in page
  assert 'src="grid.png"' in page and 'src="masks.png"' in page
  missing = dcam_config.get_config('tiny')
  missing.eval.inception_weights = str(tmp_path / 'nope.pth')
  assert 'does not exist' in suite.distribution_metrics(missing, [])['skipped']


@pytest.fixture(scope='module')
def inception_file(tmp_path_factory):
  torch = pytest.importorskip('torch')
  from tests import test_fid  # pylint: disable=g-import-not-at-top

  path = str(tmp_path_factory.mktemp('inception') / 'pt_inception.pth')
  torch.save(test_fid._random_fid_inception(torch, seed=1).state_dict(), path)  # pylint: disable=protected-access
  return path


def test_distribution_metrics_identical_sets_and_the_cache(inception_file, tmp_path, monkeypatch):
  config = stargan_config.get_config('tiny')
  config.eval.update(
    inception_weights=inception_file,
    fid_max_images=4,
    batch_size=4,
    kid_subsets=3,
    kid_subset_size=4,
    stats_cache_dir=str(tmp_path / 'cache'),
  )
  real = suite._real_images(config, 'test', None)  # pylint: disable=protected-access
  shifted = np.clip(real.astype(int) + 60, 0, 255).astype(np.uint8)
  sets = [
    suite.GeneratedSet('same', real, None, None, real),
    suite.GeneratedSet('brighter', shifted, None, None, real),
  ]
  report = suite.distribution_metrics(config, sets)
  same, brighter = report['same'], report['brighter']
  assert same['num_real'] == same['num_generated'] == 4
  assert abs(same['fid']) < 1e-3 < brighter['fid']  # the real set against itself: 0
  assert any('fewer samples than dimensions' in w for w in same['warnings'])
  # The numbers are distribution.* of the features.
  params = inception.load_weights(inception_file)
  pool, logits = (np.asarray(a) for a in inception.features_fn()(params, shifted))
  real_pool = np.asarray(inception.features_fn()(params, real)[0])
  with pytest.warns(UserWarning, match='fewer samples'):
    fid = distribution.frechet_distance_from_features(pool, real_pool)
  np.testing.assert_allclose(brighter['fid'], fid, rtol=1e-6)
  np.testing.assert_allclose(
    brighter['kid'], distribution.kernel_inception_distance(pool, real_pool, 3, 4)[0], rtol=1e-6
  )
  np.testing.assert_allclose(brighter['is'], distribution.inception_score(logits, 4)[0], rtol=1e-6)
  # Second time the real features come from the cache, keyed by what made them.
  files = sorted(os.listdir(config.eval.stats_cache_dir))
  assert len(files) == 2 and files[0].endswith('.json') and files[1].endswith('.npz')
  with open(os.path.join(config.eval.stats_cache_dir, files[0])) as f:
    key = json.load(f)
  assert key['split'] == 'test' and key['data']['image_size'] == 16
  monkeypatch.setattr(suite, '_real_images', lambda *a: pytest.fail('recomputed'))
  again = suite.distribution_metrics(config, sets[1:])
  assert again['brighter']['fid'] == brighter['fid']


def test_judge_trains_above_95_percent_and_scores_generated_faces(tmp_path):
  config = stargan_config.get_config('tiny')
  judge_dir = str(tmp_path / 'judge')
  meta = judge.train(config, judge_dir, steps=120, batch_size=32, width=8, learning_rate=3e-3)
  assert meta['test_accuracy'] >= 0.95 and meta['num_test_images'] == 250
  loaded = judge.load(judge_dir)
  config.eval.judge_dir = judge_dir
  # A "generator" that returns the true face of the requested class scores the judge's accuracy
  # on those faces; one that returns its input scores only when the target is the source.
  real, labels = suite.decode(judge.labelled_source(config.data, 'test'), 250, 16)
  report = suite.judge_metrics(
    config,
    [
      suite.GeneratedSet('truth', real, labels, None, real),
      suite.GeneratedSet('input', real, (labels + 1) % 5, None, real),
    ],
    list(loaded.class_names),
  )
  assert report['truth']['target_accuracy'] == pytest.approx(meta['test_accuracy'])
  assert report['input']['target_accuracy'] <= 0.05
  assert set(report['truth']['per_target']) == set(loaded.class_names)
  with pytest.raises(ValueError, match='knows classes'):
    suite.judge_metrics(config, [], ['a', 'b'])
  config.data.image_size = 32
  with pytest.raises(ValueError, match='trained on 16 px'):
    suite.judge_metrics(config, [], list(loaded.class_names))
  with pytest.raises(FileNotFoundError, match='python -m jaxpr_gan.tools.judge'):
    judge.load(str(tmp_path / 'none'))


def test_lpips_to_input_is_zero_for_an_identity_model(tmp_path):
  torch = pytest.importorskip('torch')
  from tests import torch_official  # pylint: disable=g-import-not-at-top
  from tests import torch_official_features  # pylint: disable=g-import-not-at-top

  net = torch_official.randomize(torch_official_features.LPIPS(), 0)
  backbone, linear = str(tmp_path / 'vgg16.pth'), str(tmp_path / 'lin.pth')
  torch.save(net.net.state_dict(), backbone)
  torch.save({k: v.abs() for k, v in net.state_dict().items() if k.startswith('lin')}, linear)
  config = stargan_config.get_config('tiny')
  config.eval.update(lpips_backbone=backbone, lpips_linear=linear, batch_size=4)
  real = suite._real_images(config, 'test', None)[:4]  # pylint: disable=protected-access
  noisy = np.clip(real.astype(int) + 40, 0, 255).astype(np.uint8)
  report = suite.lpips_metrics(
    config,
    [
      suite.GeneratedSet('identity', real, None, None, real),
      suite.GeneratedSet('brighter', noisy, None, None, real),
    ],
  )
  assert report['identity']['lpips_to_input'] < 1e-6 < report['brighter']['lpips_to_input']
