"""CycleGAN Face2Anime: unpaired domain data, the objective's terms, evaluation against the other
style's truth, a tiny run that resumes exactly (image pools included)."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from configs import cyclegan as cyclegan_config
from input_pipeline import folders
from input_pipeline import pipeline
from input_pipeline import synthetic
from jaxpr_gan import checkpointing
from jaxpr_gan import images
from jaxpr_gan import registry
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.evaluation import two_group
from jaxpr_gan.models import cyclegan
from jaxpr_gan.training import loop
from tests import image_fixtures


def _config():
  return cyclegan_config.get_config('tiny')  # 4 iterations, checkpoints at 2 and 4


def test_domains_are_read_as_two_independent_shuffles():
  config = _config()
  source = pipeline.make_source(config.data, 'train')
  assert source.group_names == ('photo', 'anime') and len(source) == 200 * 5
  it = iter(pipeline.create_train_dataset(config, source))
  batches = [next(it) for _ in range(20)]
  ia = np.concatenate([b['index_a'] for b in batches])
  ib = np.concatenate([b['index_b'] for b in batches])
  assert len(set(ia.tolist())) == len(ia)  # a shuffle: no repeats within an epoch
  assert np.mean(ia == ib) < 0.05  # unpaired: B's order is not A's
  a, b = source.groups
  for k in range(8):  # each image is its source item, flipped or not, in its domain's style
    for image, group, index in (
      (batches[0]['image_a'][k], a, ia[k]),
      (batches[0]['image_b'][k], b, ib[k]),
    ):
      want = group[int(index)]['image']
      assert np.array_equal(image, want) or np.array_equal(image[:, ::-1], want)
  assert int(a[0]['style']) == synthetic.STYLES.index('photo')
  assert int(b[0]['style']) == synthetic.STYLES.index('anime')


def test_folder_domains_follow_the_cyclegan_layout(tmp_path):
  for rel in ('trainA/x.png', 'trainA/sub/y.png', 'trainB/z.jpg', 'testA/t.png'):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_fixtures.halves(24, 24)).save(path)
  config = _config()
  config.data.update(source='folder', root=str(tmp_path))
  source = pipeline.make_source(config.data, 'train')
  assert [len(g) for g in source.groups] == [2, 1]
  with pytest.raises(folders.DatasetLayoutError, match='testB'):
    pipeline.make_source(config.data, 'test')


@pytest.fixture(scope='module')
def tiny_objective():
  config = _config()
  config.loss.lambda_identity = 0.5
  objective = registry.build(config, 2)
  params = objective.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3), jnp.uint8))
  return config, objective, params


def test_losses_compose_cycle_and_identity_terms(tiny_objective):
  config, objective, params = tiny_objective
  faces = synthetic.SyntheticFaces('train', size=16)
  batch = {
    'image_a': np.stack([faces[i]['image'] for i in range(4)]),
    'image_b': np.stack([faces[i + 9]['image'] for i in range(4)]),
  }
  _, m = objective.g_loss(params['g'], params['d'], batch, jax.random.PRNGKey(1))
  loss = config.loss
  want = (
    m['G/adv_a2b']
    + m['G/adv_b2a']
    + loss.lambda_a * m['G/cycle_a']
    + loss.lambda_b * m['G/cycle_b']
    + 0.5 * (loss.lambda_b * m['G/identity_b'] + loss.lambda_a * m['G/identity_a'])
  )
  assert float(m['G/loss']) == pytest.approx(float(want), rel=1e-5)
  # The cycle term is the L1 between a and G_ba(G_ab(a)), computed here by hand.
  a = batch['image_a'].astype(np.float32) / 127.5 - 1
  back = objective.translate(params['g'], objective.translate(params['g'], a, 'a2b'), 'b2a')
  assert float(m['G/cycle_a']) == pytest.approx(float(jnp.mean(jnp.abs(back - a))), rel=1e-5)
  # D's loss: half the sum of its real and fake terms per domain, with fakes from the pool.
  pool = objective.init_aux(16)
  d_batch, new_pool = objective.d_inputs(pool, params['g'], batch, jax.random.PRNGKey(2))
  assert int(new_pool['a']['count']) == 3 and int(new_pool['b']['count']) == 3  # tiny pool of 3
  _, d = objective.d_loss(params['d'], params['g'], d_batch, jax.random.PRNGKey(3))
  assert float(d['D/loss']) == pytest.approx(float(d['D/a'] + d['D/b']), rel=1e-6)


def test_bce_and_least_squares_variants_differ_only_in_the_adversarial_term():
  bce = cyclegan_config.get_config('tiny')
  ls = cyclegan_config.get_config('tiny+lsgan')
  assert (bce.loss.adversarial, ls.loss.adversarial) == ('bce', 'lsgan')
  official = cyclegan_config.get_config('official')
  assert (
    official.discriminator.architecture,
    official.loss.adversarial,
    official.loss.lambda_identity,
  ) == ('patch', 'lsgan', 0.5)
  unet = cyclegan_config.get_config('quick+unet')
  assert isinstance(registry.build(unet, 2).generator, cyclegan.UnetGenerator)
  assert unet.generator.num_downs == 5  # 32 px down to 1x1


class _PerfectStyle:
  """Renders the same face in the other style: a perfect CycleGAN on the synthetic faces."""

  def __init__(self, config, ids):
    size, styles = config.data.image_size, config.data.styles
    self._size, self._styles = size, styles
    self._faces = {
      synthetic.render_face(int(i), c, style=s, size=size).tobytes(): (int(i), c)
      for i in ids
      for c in range(config.data.num_classes)
      for s in styles
    }

  def translate(self, g_params, x, direction='a2b'):
    del g_params
    style = self._styles[1] if direction == 'a2b' else self._styles[0]

    def render(y):
      keys = [self._faces[img.tobytes()] for img in images.to_uint8(y)]
      out = [synthetic.render_face(i, c, style=style, size=self._size) for i, c in keys]
      return np.stack(out).astype(np.float32) / 127.5 - 1.0

    return jax.pure_callback(render, jax.ShapeDtypeStruct(x.shape, jnp.float32), x)


def test_domain_evaluation_of_a_perfect_and_an_identity_model(tmp_path):
  config = _config()
  config.eval.num_identities = 3
  ids = synthetic.identity_ids('test')[:3]
  report = two_group.evaluate_domains(config, _PerfectStyle(config, ids), None, str(tmp_path))
  for direction in ('a2b', 'b2a'):
    assert report[direction]['num_pairs'] == 3 * 5
    assert report[direction]['paired_l1'] == pytest.approx(0.0, abs=1e-6)
    assert report[direction]['improvement_rate'] == 1.0
  same = type('Same', (), {'translate': lambda self, g, x, direction='a2b': x})()
  report = two_group.evaluate_domains(config, same, None, str(tmp_path))
  assert report['a2b']['improvement_rate'] == 0.0
  assert report['a2b']['paired_l1'] == pytest.approx(report['a2b']['input_as_output']['paired_l1'])
  assert os.path.exists(os.path.join(tmp_path, 'grid.png'))


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('cyclegan4'))
  return workdir, jax.device_get(loop.train(_config(), workdir))


def test_tiny_run_trains_evaluates_and_resumes_exactly(uninterrupted, tmp_path):
  workdir, state = uninterrupted
  assert int(state.step) == 4 and int(state.aux['a']['count']) == 3  # the pool is full
  report = evaluate.evaluate(workdir, config=_config())
  with open(os.path.join(workdir, 'eval', 'metrics.json')) as f:
    assert json.load(f)['a2b']['num_pairs'] == 10 * 5
  assert 0.0 <= report['b2a']['improvement_rate'] <= 1.0
  assert os.path.exists(os.path.join(workdir, 'eval', 'grid.png'))
  # Stopped after 2 iterations (keep only that checkpoint), resumed: the same 4-step state,
  # image pools and data order included.
  resumed = str(tmp_path / 'resumed')
  shutil.copytree(workdir, resumed, ignore=shutil.ignore_patterns('eval'))
  shutil.rmtree(os.path.join(resumed, 'checkpoints', '4'))
  assert checkpointing.Checkpointer(resumed).latest_step() == 2
  again = jax.device_get(loop.train(_config(), resumed))
  for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(again), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
