"""MMA-GAN: attention in [0, 1], the global residual, the intensity code, parameter counts,
the code and intensity losses, the intensity evaluation, and tiny runs of SARGAN and MMA-GAN."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mmagan as mmagan_config
from configs import sargan as sargan_config
from input_pipeline import synthetic
from jaxpr_gan import images
from jaxpr_gan import registry
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.evaluation import intensity
from jaxpr_gan.models import count_params
from jaxpr_gan.models import mmagan
from jaxpr_gan.models import stargan
from jaxpr_gan.nn import attention
from jaxpr_gan.objectives import losses
from jaxpr_gan.training import loop

CLASSES = ['neutral', 'happy', 'sad', 'angry', 'surprised']


def _mmarm_count(c: int) -> int:
  # 3x3 convs: the first, two up, the last (bias-free, each with a 2c-parameter affine IN);
  # two stride-2 4x4 convs; channel MLP c -> c/16 -> c with biases; 7x7 conv 2 -> 1 with bias.
  h = c // 16
  return 4 * 9 * c * c + 2 * 16 * c * c + 6 * 2 * c + (c * h + h) + (h * c + c) + 2 * 49 + 1


def _generator(variant: str = '', **overrides) -> stargan.Generator:
  """MMA-GAN's generator: the preset of StarGAN's that configs/mmagan.py declares."""
  config = mmagan_config.get_config(variant)
  config.generator.update(overrides)
  return registry.build(config, 7).generator


def test_parameter_counts_at_paper_size():
  x = jnp.zeros((1, 128, 128, 3))
  # StarGAN's G at 7 classes is 8,436,800 (8,430,528 at 5 classes + 2*64*7*7) of which its six
  # residual blocks hold 6 * 2 * (256*256*9 + 512); MMA-GAN puts six MMARMs in their place.
  shell = 8_430_528 + 2 * 64 * 49 - 6 * 2 * (256 * 256 * 9 + 512)
  assert (
    count_params(_generator(), x, jnp.zeros((1, 7))) == shell + 6 * _mmarm_count(256) == 28_161_266
  )
  # StarGAN's D at 7 classes (44,778,432) plus the 2x2 code head (7 outputs) and intensity head.
  assert (
    count_params(mmagan.Discriminator(image_size=128, num_classes=7), x)
    == 44_778_432 + 2048 * 4 * 7 + 2048 * 4
    == 44_843_968
  )


def test_attention_maps_lie_in_unit_interval():
  block = attention.MMARM(32)
  x = 3.0 * jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 32))
  variables = block.init(jax.random.PRNGKey(1), x)
  y, state = block.apply(variables, x, capture_intermediates=True)
  att = state['intermediates']['attention']
  channel = att['channel']['__call__'][0]
  spatial = att['spatial']['__call__'][0]
  assert channel.shape == (2, 1, 1, 32) and spatial.shape == (2, 8, 8, 1)
  for gate in (channel, spatial):
    assert bool(jnp.all((gate >= 0) & (gate <= 1)))
    assert float(jnp.std(gate)) > 0  # not a constant map
  assert y.shape == x.shape


@pytest.mark.parametrize('size', [16, 24])  # 24: odd sizes inside the module (6 -> 3 -> 1)
def test_global_residual_returns_input_when_residual_branch_is_zero(size):
  g = _generator(conv_dim=4, num_blocks=2)
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, size, size, 3), minval=-1.0, maxval=1.0)
  z = jnp.array([[0, 0.3, 0, 0, 0], [0, 0, 0, 1.0, 0]])
  params = g.init(jax.random.PRNGKey(0), x, z)['params']
  y = g.apply({'params': params}, x, z)
  assert y.shape == x.shape and not np.allclose(np.asarray(y), np.asarray(x))
  zeroed = dict(params, to_rgb={'kernel': jnp.zeros_like(params['to_rgb']['kernel'])})
  np.testing.assert_array_equal(np.asarray(g.apply({'params': zeroed}, x, z)), np.asarray(x))


def test_too_small_an_image_for_the_module_depth_is_a_clear_error():
  g = _generator(conv_dim=4, num_blocks=1)  # 12 px -> 3x3 features, depth 2 needs 4x4
  with pytest.raises(ValueError, match='raise data.image_size'):
    g.init(jax.random.PRNGKey(0), jnp.zeros((1, 12, 12, 3)), jnp.zeros((1, 5)))


@pytest.fixture(scope='module')
def tiny_objective():
  config = mmagan_config.get_config('tiny')
  objective = registry.build(config, len(CLASSES))
  params = objective.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3), jnp.uint8))
  return objective, params


def test_rho_zero_gives_the_same_code_and_output_for_every_class(tiny_objective):
  objective, params = tiny_objective
  targets = jnp.arange(5)
  np.testing.assert_array_equal(np.asarray(objective.condition(targets, jnp.zeros(5))), 0.0)
  np.testing.assert_array_equal(
    np.asarray(objective.condition(targets, jnp.full(5, 0.5))), 0.5 * np.eye(5)
  )
  x = jax.random.uniform(jax.random.PRNGKey(2), (1, 16, 16, 3), minval=-1)
  translate = jax.jit(objective.translate)
  at = lambda k, rho: np.asarray(translate(params['g'], x, jnp.array([k]), jnp.array([rho])))
  for k in range(1, 5):
    np.testing.assert_array_equal(at(k, 0.0), at(0, 0.0))
    assert not np.allclose(at(k, 1.0), at(0, 1.0))  # at rho = 1 the classes differ


def test_code_and_intensity_losses_by_hand(tiny_objective):
  objective, _ = tiny_objective
  assert float(
    losses.squared_l2(jnp.array([[1.0, 2.0], [0.0, 0.0]]), jnp.array([[0.0, 0.0], [0.0, 3.0]]))
  ) == pytest.approx(7.0)
  assert float(losses.mse(jnp.array([0.5, 1.0]), jnp.array([0.0, 0.0]))) == pytest.approx(0.625)
  # Fakes for targets 1 and 3 at rho 0.5 and 1: z = [0, .5, 0, 0, 0], [0, 0, 0, 1, 0].
  cor = jnp.array([[0.0, 0.5, 0, 0, 0], [0.0, 0, 0, 0, 0]])  # errors 0 and 1
  rho_hat = jnp.array([0.5, 0.0])  # errors 0 and 1
  fake_out = (None, None, cor, rho_hat)
  targets, rho = jnp.array([1, 3]), jnp.array([0.5, 1.0])
  g_total, g_m = objective._code_terms(fake_out, targets, rho, for_generator=True)
  d_total, d_m = objective._code_terms(fake_out, targets, rho, for_generator=False)
  assert float(g_m['G/info']) == pytest.approx(0.5) and float(g_m['G/rho']) == pytest.approx(0.5)
  assert float(g_total) == pytest.approx(0.5 * objective.lambda_info_g + 0.5 * objective.lambda_rho)
  assert float(d_total) == pytest.approx(objective.lambda_info_d * (0.5 + 0.5))
  assert set(d_m) == {'D/info', 'D/rho'}


def test_losses_have_the_terms_of_eq_7_and_8(tiny_objective):
  objective, params = tiny_objective
  batch = {'image': jnp.full((4, 16, 16, 3), 128, jnp.uint8), 'label': jnp.array([0, 1, 2, 3])}
  _, d_m = objective.d_loss(params['d'], params['g'], batch, jax.random.PRNGKey(0))
  _, g_m = objective.g_loss(params['g'], params['d'], batch, jax.random.PRNGKey(0))
  assert set(d_m) == {'D/loss', 'D/adv', 'D/cls', 'D/gp', 'D/cls_acc', 'D/info', 'D/rho'}
  assert set(g_m) == {'G/loss', 'G/adv', 'G/cls', 'G/rec', 'G/info', 'G/rho'}
  want = (
    g_m['G/adv']
    + objective.lambda_cls * g_m['G/cls']
    + objective.lambda_rec * g_m['G/rec']
    + objective.lambda_info_g * g_m['G/info']
    + objective.lambda_rho * g_m['G/rho']
  )
  assert float(g_m['G/loss']) == pytest.approx(float(want), rel=1e-5)


def _oracle_translate(config, ids):
  """A perfect MMA-GAN: renders the truth of (input's identity, target, rho), via a callback."""
  size, style = config.data.image_size, config.data.style
  lookup = {
    synthetic.render_face(int(i), c, style=style, size=size).tobytes(): int(i)
    for i in ids
    for c in range(len(CLASSES))
  }

  def render(x, target, rho):
    faces = images.to_uint8(x)
    out = [
      synthetic.render_face(
        lookup[img.tobytes()], int(t), intensity=float(r), style=style, size=size
      )
      for img, t, r in zip(faces, target, rho)
    ]
    return images.to_float(np.stack(out))

  def translate(x, target, rho=None):
    rho = jnp.ones(target.shape) if rho is None else jnp.broadcast_to(rho, target.shape)
    shape = jax.ShapeDtypeStruct(x.shape, jnp.float32)
    return jax.pure_callback(render, shape, x, target, rho.astype(jnp.float32))

  return translate


def test_intensity_evaluation_of_a_perfect_and_an_identity_model(tmp_path):
  config = mmagan_config.get_config('tiny')
  config.eval.num_identities = 2
  config.data.image_size = 32  # at 16 px some adjacent intensities render alike
  ids = synthetic.identity_ids('test')[:2]
  perfect = intensity.evaluate_intensity(
    config, _oracle_translate(config, ids), CLASSES, str(tmp_path)
  )
  assert perfect['num_pairs'] == 2 * (4 + 4 * 3)  # non-neutral targets other than the source
  np.testing.assert_allclose(
    perfect['mean_estimated_intensity'], config.eval.intensities, atol=1e-6
  )
  np.testing.assert_allclose(perfect['paired_l1_at_rho'], 0.0, atol=1e-6)
  assert perfect['spearman'] == pytest.approx(1.0)
  assert perfect['mean_abs_intensity_error'] == pytest.approx(0.0, abs=1e-6)
  assert os.path.exists(tmp_path / 'intensity.png')
  # A model that ignores rho (returns its input) has one estimate for every rho, no correlation.
  frozen = intensity.evaluate_intensity(
    config, lambda x, target, rho=None: x, CLASSES, str(tmp_path)
  )
  assert frozen['spearman'] is None or abs(frozen['spearman']) < 1e-9
  assert len(set(np.round(frozen['mean_estimated_intensity'], 9))) == 1
  assert frozen['mean_abs_intensity_error'] > 0.2


@pytest.mark.parametrize(
  'variant',
  [
    '',
    'quick',
    'tiny',
    'no_mmar',
    'no_grc',
    'no_both',
    'tiny+no_mmar',
    'tiny+no_grc',
    'quick+no_both',
  ],
)
def test_every_variant_builds(variant):
  config = mmagan_config.get_config(variant)
  assert config.model == 'mmagan'
  config.data.image_size = 16
  config.discriminator.repeat_num = 4
  objective = registry.build(config, config.data.num_classes)
  params = jax.eval_shape(
    objective.init, jax.random.PRNGKey(0), jnp.zeros((2, 16, 16, 3), jnp.uint8)
  )
  src, cls, cor, rho = jax.eval_shape(
    objective.discriminator.apply, {'params': params['d']}, jnp.zeros((2, 16, 16, 3))
  )
  n = config.data.num_classes
  assert (src.shape, cls.shape, cor.shape, rho.shape) == ((2, 1, 1, 1), (2, n), (2, n), (2,))
  blocks = [k for k in params['g'] if k.startswith(('MMARM', 'ResidualBlock'))]
  assert len(blocks) == config.generator.num_blocks
  want = 'MMARM' if config.generator.block == 'mmarm' else 'ResidualBlock'
  assert all(k.startswith(want) for k in blocks)
  assert config.generator.image_residual == ('grc' not in variant and 'both' not in variant)
  with pytest.raises(ValueError, match='unknown modifier'):
    mmagan_config.get_config('quick+no_attention')


@pytest.mark.parametrize('config_module', [sargan_config, mmagan_config], ids=['sargan', 'mmagan'])
def test_tiny_config_trains_and_evaluates(config_module, tmp_path):
  config = config_module.get_config('tiny')
  workdir = str(tmp_path)
  state = loop.train(config, workdir)
  assert int(state.step) == config.num_train_steps
  report = evaluate.evaluate(workdir, config=config)
  with open(os.path.join(workdir, 'eval', 'metrics.json')) as f:
    assert json.load(f)['num_pairs'] == report['num_pairs'] == 10 * 5 * 4
  assert np.isfinite(report['paired_l1']) and 0.0 <= report['improvement_rate'] <= 1.0
  if config.model == 'mmagan':
    follow = report['intensity']
    assert follow['rho'] == list(config.eval.intensities)
    assert all(0.0 <= e <= 1.0 for e in follow['mean_estimated_intensity'])
    assert os.path.exists(os.path.join(workdir, 'eval', 'intensity.png'))
  else:
    assert 'intensity' not in report


def test_max_over_matches_max_and_sends_its_gradient_to_the_first_maximum():
  x = jnp.array([[1.0, 3.0, 3.0, -2.0], [0.5, 0.25, 0.0, 0.5]])
  np.testing.assert_array_equal(np.asarray(attention.max_over(x, -1)), [[3.0], [0.5]])
  grad = jax.grad(lambda v: jnp.sum(attention.max_over(v, -1)))(x)
  np.testing.assert_array_equal(np.asarray(grad), [[0, 1, 0, 0], [1, 0, 0, 0]])
