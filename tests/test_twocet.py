"""2CET-GAN: groups data, the two cycles' loss terms, evaluation against truths, a tiny run."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from configs import twocet as twocet_config
from input_pipeline import folders
from input_pipeline import pipeline
from input_pipeline import synthetic
from jaxpr_gan import images
from jaxpr_gan import registry
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.evaluation import two_group
from jaxpr_gan.objectives import losses
from jaxpr_gan.training import loop
from tests import image_fixtures


def test_synthetic_groups_split_neutral_from_emotional_faces():
  config = twocet_config.get_config('tiny')
  source = pipeline.make_source(config.data, 'train')
  neutral, emotional = source.groups
  assert (len(neutral), len(emotional)) == (200, 200 * 4)
  assert {int(neutral[i]['label']) for i in range(0, 200, 7)} == {0}
  assert {int(emotional[i]['label']) for i in range(0, 800, 3)} == {1, 2, 3, 4}
  test_ids = {
    int(g[i]['identity'])
    for g in pipeline.make_source(config.data, 'test').groups
    for i in range(len(g))
  }
  assert test_ids == set(synthetic.identity_ids('test').tolist())  # no training identity
  batch = next(iter(pipeline.create_train_dataset(config, source)))
  assert batch['image_a'].shape == batch['image_b'].shape == (8, 16, 16, 3)
  assert set(batch['label_a'].tolist()) == {0} and min(batch['label_b']) >= 1


def test_folder_groups_take_expression_subfolders_as_classes(tmp_path):
  for rel in (
    'train/neutral/a.png',
    'train/neutral/b.png',
    'train/emotional/happy/c.png',
    'train/emotional/sad/d.png',
    'train/emotional/sad/e.png',
  ):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_fixtures.halves(20, 20)).save(path)
  config = twocet_config.get_config('tiny')
  config.data.update(source='folder', root=str(tmp_path))
  source = pipeline.make_source(config.data, 'train')
  assert source.class_names == ('neutral', 'happy', 'sad')
  assert [int(source.groups[1][i]['label']) for i in range(3)] == [1, 2, 2]
  with pytest.raises(folders.DatasetLayoutError, match='test/neutral'):
    pipeline.make_source(config.data, 'test')


@pytest.fixture(scope='module')
def tiny_objective():
  config = twocet_config.get_config('tiny')
  objective = registry.build(config, 5)
  params = objective.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3), jnp.uint8))
  return config, objective, params


def test_losses_compose_eq_5_and_8_with_the_dynamic_weights(tiny_objective):
  config, objective, params = tiny_objective
  faces = synthetic.SyntheticFaces('train', size=16)
  batch = {
    'image_a': np.stack([faces[5 * i]['image'] for i in range(4)]),
    'image_b': np.stack([faces[5 * i + 1 + i % 4]['image'] for i in range(4)]),
  }
  for step in (0, 1, 2, 5):  # tiny ramps over 2 steps
    _, m = objective.g_loss(params['g'], params['d'], batch, jax.random.PRNGKey(1), step)
    w = [
      float(losses.ramp(step, *config.loss[k]))
      for k in ('code_weight', 'ds_weight', 'cyc_e_weight')
    ]
    assert [
      float(m['G/lambda_code']),
      float(m['G/lambda_ds']),
      float(m['G/lambda_cyc_e']),
    ] == pytest.approx(w)
    want = (
      m['G/adv_e']
      + m['G/cycle_n']
      + w[0] * m['G/code']
      - w[1] * m['G/diversity']
      + m['G/adv_n']
      + w[2] * m['G/cycle_e']
    )
    assert float(m['G/loss']) == pytest.approx(float(want), rel=1e-5)
  assert [float(losses.ramp(s, 0.0, 1.0, 2)) for s in (0, 1, 2)] == [0.0, 0.5, 1.0]
  _, d = objective.d_loss(params['d'], params['g'], batch, jax.random.PRNGKey(2))
  want = d['D/adv_e'] + d['D/adv_n'] + config.loss.lambda_r1 * (d['D/r1_e'] + d['D/r1_n'])
  assert float(d['D/loss']) == pytest.approx(float(want), rel=1e-5)


def test_zero_code_is_neutralisation_and_codes_are_in_range(tiny_objective):
  _, objective, params = tiny_objective
  x = jax.random.uniform(jax.random.PRNGKey(3), (2, 16, 16, 3), minval=-1, maxval=1)
  zero = jnp.zeros((2, objective.code_dim))
  np.testing.assert_array_equal(
    objective.neutralize(params['g'], x), objective.generate(params['g'], x, zero)
  )
  codes = objective.random_code(jax.random.PRNGKey(4), 1000)
  assert codes.shape == (1000, 4) and float(codes.min()) >= -0.5 and float(codes.max()) < 0.5
  assert abs(float(codes.mean())) < 0.02


class _PerfectTransfer:
  """Renders the truth of a transfer: the target's identity with the reference's expression."""

  code_dim = 1

  def __init__(self, config, ids):
    size, style = config.data.image_size, config.data.style
    self._size, self._style = size, style
    self._faces = {
      synthetic.render_face(int(i), c, style=style, size=size).tobytes(): (int(i), c)
      for i in ids
      for c in range(config.data.num_classes)
    }

  def _render(self, keys):
    out = [synthetic.render_face(i, c, style=self._style, size=self._size) for i, c in keys]
    return np.stack(out).astype(np.float32) / 127.5 - 1.0

  def _lookup(self, x):
    return [self._faces[img.tobytes()] for img in images.to_uint8(x)]

  def _call(self, fn, x, *more):
    return jax.pure_callback(fn, jax.ShapeDtypeStruct(x.shape, jnp.float32), x, *more)

  def transfer(self, g_params, target, reference, scale=1.0):
    del g_params, scale
    return self._call(
      lambda t, r: self._render(
        [(i, c) for (i, _), (_, c) in zip(self._lookup(t), self._lookup(r))]
      ),
      target,
      reference,
    )

  def neutralize(self, g_params, x):
    del g_params
    return self._call(lambda y: self._render([(i, 0) for i, _ in self._lookup(y)]), x)

  def encode(self, g_params, x):
    del g_params
    return jnp.zeros((x.shape[0], 1))


def test_reference_evaluation_of_a_perfect_model_scores_the_truth(tmp_path):
  config = twocet_config.get_config('tiny')
  config.eval.num_identities = 3
  classes = synthetic.EXPRESSIONS[:5]
  perfect = _PerfectTransfer(config, synthetic.identity_ids('test')[:3])
  report, _ = two_group.evaluate_reference(config, perfect, None, classes, str(tmp_path))
  assert report['transfer']['num_pairs'] == 3 * 2 * 4  # targets x 2 references x classes
  assert report['neutralize']['num_pairs'] == 3 * 4
  for part in ('transfer', 'neutralize'):
    assert report[part]['paired_l1'] == pytest.approx(0.0, abs=1e-6)
    assert report[part]['improvement_rate'] == 1.0
    assert report[part]['input_as_output']['paired_l1'] > 0.0
  assert os.path.exists(os.path.join(tmp_path, 'grid.png'))


def test_tiny_config_trains_and_evaluates(tmp_path):
  config = twocet_config.get_config('tiny')
  workdir = str(tmp_path)
  state = loop.train(config, workdir)
  assert int(state.step) == 4 and jax.tree.leaves(state.ema_params)
  report = evaluate.evaluate(workdir, config=config)
  with open(os.path.join(workdir, 'eval', 'metrics.json')) as f:
    assert json.load(f)['transfer']['num_pairs'] == 10 * 2 * 4
  assert report['neutralize']['num_pairs'] == 10 * 4
  assert report['code_scale']['rho'] == list(config.eval.code_scales)
  assert report['code_scale']['num_pairs'] == 10 * 4  # neutral sources only
  for name in ('grid.png', 'code_scale.png'):
    assert os.path.exists(os.path.join(workdir, 'eval', name))
  assert os.listdir(os.path.join(workdir, 'samples'))


def test_class_mean_codes_average_each_class_of_the_training_faces(tiny_objective):
  config, objective, params = tiny_objective
  config = config.copy_and_resolve_references()
  config.eval.codes_per_class = 3
  codes = two_group.class_mean_codes(config, objective, params['g'], 5)
  emotional = pipeline.make_source(config.data, 'train').groups[1]
  sad = [emotional[int(i)]['image'] for i in np.flatnonzero(emotional.labels() == 2)[:3]]
  want = objective.encode(params['g'], np.stack(sad).astype(np.float32) / 127.5 - 1).mean(0)
  np.testing.assert_allclose(codes[2], want, atol=1e-5)
  assert not codes[0].any()  # neutral: the zero code
