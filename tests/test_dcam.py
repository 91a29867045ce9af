"""DCAM-GAN: mapping network, AdaIN decoder control, attention mask, contextual loss."""

import json
import os

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dcam as dcam_config
from jaxpr_gan import checkpointing
from jaxpr_gan import config_validation
from jaxpr_gan import inference
from jaxpr_gan import registry
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.models import count_params
from jaxpr_gan.models import dcam
from jaxpr_gan.models import vgg
from jaxpr_gan.nn import attention
from jaxpr_gan.nn import layers
from jaxpr_gan.objectives import contextual
from jaxpr_gan.objectives import losses
from jaxpr_gan.training import loop
from jaxpr_gan.training import state as state_lib


def _relu(v):
  return np.maximum(v, 0.0)


def _instance_norm(x, eps=1e-5):
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = x.var(axis=(1, 2), keepdims=True)
  return (x - mean) / np.sqrt(var + eps)


def test_mapping_network_is_nine_dense_layers_with_relu_after_each():
  f = dcam.MappingNetwork(hidden_dim=512, out_dim=64)
  c = jax.nn.one_hot(jnp.array([0, 3]), 4)
  params = f.init(jax.random.PRNGKey(0), c)['params']
  assert sorted(params) == [f'Dense_{i}' for i in range(9)]
  shapes = [params[f'Dense_{i}']['kernel'].shape for i in range(9)]
  assert shapes == [(4, 512)] + [(512, 512)] * 7 + [(512, 64)]
  assert count_params(f, c) == 4 * 512 + 512 + 7 * (512 * 512 + 512) + 512 * 64 + 64
  # Biases drawn at random so that ReLU cuts somewhere; then the chain by hand.
  rng = np.random.default_rng(0)
  params = {
    k: {'kernel': v['kernel'], 'bias': rng.normal(size=v['bias'].shape) * 0.05}
    for k, v in params.items()
  }
  h = np.asarray(c)
  for i in range(9):
    h = _relu(h @ np.asarray(params[f'Dense_{i}']['kernel']) + params[f'Dense_{i}']['bias'])
  out = np.asarray(f.apply({'params': params}, c))
  np.testing.assert_allclose(out, h, rtol=1e-5, atol=1e-6)
  assert out.min() == 0.0 and out.max() > 0.0  # the last layer is rectified too


def test_adain_with_zero_control_is_instance_norm_and_applies_scale_and_shift():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 5, 3)) * 3.0 + 1.0
  k = jax.random.normal(jax.random.PRNGKey(1), (2, 7))
  adain = layers.AdaIN(3)
  params = adain.init(jax.random.PRNGKey(2), x, k)['params']
  zero = {'fc': {'kernel': jnp.zeros((7, 6)), 'bias': jnp.zeros(6)}}
  np.testing.assert_allclose(
    np.asarray(adain.apply({'params': zero}, x, k)), _instance_norm(np.asarray(x)), atol=1e-5
  )
  # f(k) = (gamma, beta) from the bias alone: (1 + gamma) * IN(x) + beta per channel.
  gamma, beta = np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.2, -0.3])
  fixed = {'fc': {'kernel': jnp.zeros((7, 6)), 'bias': jnp.asarray(np.r_[gamma, beta])}}
  np.testing.assert_allclose(
    np.asarray(adain.apply({'params': fixed}, x, k)),
    (1 + gamma) * _instance_norm(np.asarray(x)) + beta,
    atol=1e-5,
  )
  assert not np.allclose(adain.apply({'params': params}, x, k), _instance_norm(np.asarray(x)))


def _tiny_generator(**kw):
  g = dcam.Generator(
    conv_dim=4, num_enc_res=1, num_dec_res=2, num_mask_res=1, mapping_dim=8, control_dim=8, **kw
  )
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 16, 16, 3), minval=-1.0, maxval=1.0)
  c = jax.nn.one_hot(jnp.array([0, 3]), 5)
  return g, g.init(jax.random.PRNGKey(0), x, c)['params'], x, c


def test_decoder_injects_the_control_after_every_decoder_conv_but_the_last():
  g, params, x, c = _tiny_generator()
  fcs = {
    '/'.join(str(k.key) for k in path[:-2]): leaf.shape
    for path, leaf in jax.tree_util.tree_flatten_with_path(params['trans'])[0]
    if [k.key for k in path[-2:]] == ['fc', 'kernel']
  }
  # 2 bottlenecks x 2 convs + 2 transposed convs; the encoder and to_rgb have none. Each f maps
  # the control (8) to twice its layer's channels: 16 in the bottleneck, then 8 and 4.
  assert sorted(fcs.items()) == [
    ('AdaINResidualBlock_0/AdaIN_0', (8, 32)),
    ('AdaINResidualBlock_0/AdaIN_1', (8, 32)),
    ('AdaINResidualBlock_1/AdaIN_0', (8, 32)),
    ('AdaINResidualBlock_1/AdaIN_1', (8, 32)),
    ('AdaIN_0', (8, 16)),
    ('AdaIN_1', (8, 8)),
  ]
  # The control changes the output through the decoder only: different classes, different y.
  y = g.apply({'params': params}, x, c)
  y2 = g.apply({'params': params}, x, c[::-1])
  assert y.shape == x.shape and not np.allclose(y, y2)


def test_mask_in_unit_interval_and_blend_of_eq_7():
  g, params, x, c = _tiny_generator()
  out, state = g.apply({'params': params}, x, c, mutable=[attention.MASKS])
  (mask,) = state[attention.MASKS]['mask']  # the generator's declared attention mask
  assert mask.shape == (2, 16, 16, 1)
  assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
  assert 0.0 < float(mask.min()) < float(mask.max()) < 1.0  # not saturated at random init

  def with_mask_bias(b):
    att = dict(
      params['att'],
      to_mask={'kernel': params['att']['to_mask']['kernel'], 'bias': jnp.full((1,), b)},
    )
    return dict(params, att=att)

  # M = 0: the input, exactly; M = 1: G_trans's colouring y alone.
  off, state = g.apply({'params': with_mask_bias(-1e4)}, x, c, mutable=[attention.MASKS])
  assert float(jnp.max(state[attention.MASKS]['mask'][0])) == 0.0
  np.testing.assert_array_equal(np.asarray(off), np.asarray(x))
  on = g.apply({'params': with_mask_bias(1e4)}, x, c)
  trans_only = dcam.Generator(
    conv_dim=4, num_enc_res=1, num_dec_res=2, mapping_dim=8, control_dim=8, attention_mask=False
  )
  no_att = {k: v for k, v in params.items() if k != 'att'}
  np.testing.assert_array_equal(
    np.asarray(on), np.asarray(trans_only.apply({'params': no_att}, x, c))
  )
  # The inference signature reports this mask.
  config = dcam_config.get_config('tiny')
  config.generator.num_dec_res = 2  # as _tiny_generator
  objective = registry.build(config, 5)
  image, m = inference.translate_fn(objective)(params, x, jnp.array([0, 3]), None, None)
  np.testing.assert_allclose(np.asarray(image), np.asarray(out), atol=1e-6)
  np.testing.assert_allclose(np.asarray(m), np.asarray(mask[..., 0]), atol=1e-6)


def _contextual_by_loops(x, y, h=0.5, eps=1e-5):
  """Mechrez et al.'s definitions written out, one image, (N, C) feature sets."""
  mu = y.mean(0)
  xs = [(v - mu) / (np.linalg.norm(v - mu) + eps) for v in x]
  ys = [(v - mu) / (np.linalg.norm(v - mu) + eps) for v in y]
  d = np.array([[1.0 - xi @ yj for yj in ys] for xi in xs])
  cx = np.zeros_like(d)
  for i in range(len(xs)):
    rel = d[i] / (d[i].min() + eps)
    w = np.exp((1.0 - rel) / h)
    cx[i] = w / w.sum()
  return -np.log(np.mean([cx[:, j].max() for j in range(len(ys))]) + eps)


def test_contextual_loss_by_hand_permutation_invariant_and_rising_with_change():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 3, 4, 6)).astype(np.float32)
  y = rng.normal(size=(2, 3, 4, 6)).astype(np.float32)
  got = float(losses.contextual(jnp.asarray(x), jnp.asarray(y)))
  want = np.mean([_contextual_by_loops(x[b].reshape(-1, 6), y[b].reshape(-1, 6)) for b in range(2)])
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # The same set: CX = 1, loss 0 (up to eps).
  assert abs(float(losses.contextual(jnp.asarray(y), jnp.asarray(y)))) < 1e-4
  # Positions of the target's features permuted: a set, so the same loss.
  perm = rng.permutation(12)
  y_perm = y.reshape(2, 12, 6)[:, perm].reshape(2, 3, 4, 6)
  np.testing.assert_allclose(
    float(losses.contextual(jnp.asarray(x), jnp.asarray(y_perm))), got, rtol=1e-6
  )
  # Features closer to the target lower it; moving them away raises it.
  noise = rng.normal(size=y.shape).astype(np.float32)
  rising = [
    float(losses.contextual(jnp.asarray(y + s * noise), jnp.asarray(y)))
    for s in (0.3, 0.5, 1.0, 2.0)
  ]
  assert 0.0 < rising[0] < rising[1] < rising[2] < rising[3]


def _write_legacy_keras_h5(path, params):
  """The published Keras 2 file's layout: layer_names, weight_names, flat dataset names."""
  with h5py.File(path, 'w') as f:
    names = [f'block{n[4]}_conv{n[6]}' for n in params]
    f.attrs['layer_names'] = np.array([n.encode() for n in ['input_1'] + names])
    f.create_group('input_1').attrs['weight_names'] = np.array([], dtype='S1')
    for conv, name in zip(params, names):
      g = f.create_group(name)
      g.attrs['weight_names'] = np.array([f'{name}_W_1:0'.encode(), f'{name}_b_1:0'.encode()])
      g[f'{name}_W_1:0'] = np.asarray(params[conv]['kernel'])
      g[f'{name}_b_1:0'] = np.asarray(params[conv]['bias'])


def test_missing_weights_file_names_the_config_key(tmp_path):
  config = dcam_config.get_config('tiny')
  config.loss.cx_network = 'vgg19'
  with pytest.raises(contextual.MissingWeightsError, match='config.loss.vgg19_weights is empty'):
    loop.train(config, str(tmp_path / 'a'))
  config.loss.vgg19_weights = str(tmp_path / 'missing.h5')
  with pytest.raises(contextual.MissingWeightsError, match='missing.h5.* does not exist'):
    loop.train(config, str(tmp_path / 'b'))


def test_tiny_config_trains_with_a_weights_file_records_it_and_evaluates(tmp_path):
  config = dcam_config.get_config('tiny')
  config.loss.cx_network = 'vgg19'
  rng = np.random.default_rng(3)
  convs = vgg.convs_needed(config.loss.cx_layers)
  file_params = {}
  for conv in convs:
    i = vgg.CONV_NAMES.index(conv)
    cin = 3 if i == 0 else vgg._channels(vgg.CONV_NAMES[i - 1])  # pylint: disable=protected-access
    cout = vgg._channels(conv)  # pylint: disable=protected-access
    file_params[conv] = {
      'kernel': rng.normal(size=(3, 3, cin, cout)).astype(np.float32) * 0.1,
      'bias': rng.normal(size=cout).astype(np.float32) * 0.1,
    }
  weights = str(tmp_path / 'vgg19_notop.h5')
  _write_legacy_keras_h5(weights, file_params)
  config.loss.vgg19_weights = weights
  workdir = str(tmp_path / 'run')
  state = loop.train(config, workdir)
  assert int(state.step) == config.num_train_steps
  for conv in convs:  # the loss used the file's weights, unchanged by training
    np.testing.assert_array_equal(
      np.asarray(state.aux['features'][conv]['kernel']), file_params[conv]['kernel']
    )
  with open(os.path.join(workdir, 'run.json')) as f:
    record = json.load(f)['contextual_loss']
  assert record['network'] == 'vgg19' and record['weights'] == os.path.abspath(weights)
  assert len(record['sha256']) == 64 and record['layers'] == list(config.loss.cx_layers)
  ckpt = checkpointing.Checkpointer(workdir, max_to_keep=None, async_save=False)
  assert ckpt.meta(config.num_train_steps)['contextual_loss'] == record
  ckpt.close()
  report = evaluate.evaluate(workdir, config=config)
  assert report['num_pairs'] == 10 * 5 * 4 and np.isfinite(report['paired_l1'])
  assert 0.0 <= report['improvement_rate'] <= 1.0


@pytest.fixture(scope='module')
def tiny_batch():
  images = jax.random.randint(jax.random.PRNGKey(0), (4, 16, 16, 3), 0, 256).astype(jnp.uint8)
  return {'image': images, 'label': jnp.array([0, 1, 2, 3])}


@pytest.mark.parametrize('variant', ['tiny', 'tiny+no_cl', 'tiny+stargan_am', 'tiny+stargan_dc'])
def test_generator_loss_terms_per_variant(variant, tiny_batch):
  config = dcam_config.get_config(variant)
  objective = registry.build(config, 5)
  params = objective.init(jax.random.PRNGKey(0), tiny_batch['image'])
  aux = objective.init_aux(16)
  batch = objective.g_inputs(aux, tiny_batch)
  total, m = jax.jit(objective.g_loss)(params['g'], params['d'], batch, jax.random.PRNGKey(1))
  terms = float(m['G/adv']) + float(m['G/cls'])
  if variant == 'tiny':
    assert 'G/rec' not in m and float(m['G/cx']) > 0.0
    terms += config.loss.lambda_cx * float(m['G/cx'])
  elif variant == 'tiny+no_cl':
    assert 'G/rec' not in m and 'G/cx' not in m and aux == {}
  else:  # the StarGAN baselines keep its reconstruction loss
    assert 'G/cx' not in m and config.loss.lambda_rec == 10.0
    terms += config.loss.lambda_rec * float(m['G/rec'])
  np.testing.assert_allclose(float(total), terms, rtol=1e-5)
  g = params['g']
  assert ('att' in g) == config.generator.attention_mask
  assert ('mapping' in g) == config.generator.decoder_control
  if not config.generator.decoder_control:  # StarGAN's G: label maps tiled onto the input
    assert g['trans']['Conv_0']['kernel'].shape[2] == 3 + 5


def test_paper_config_sizes_and_schedule():
  config = dcam_config.get_config('')
  assert (
    config.batch_size,
    config.num_train_steps,
    config.optim.num_decay_steps,
    config.optim.decay_every,
  ) == (16, 200_000, 100_000, 1000)
  assert (config.optim.g_lr, config.optim.b1, config.optim.b2) == (1e-4, 0.5, 0.999)
  assert (config.loss.lambda_cx, config.loss.lambda_cls, config.loss.lambda_gp) == (0.1, 1, 10)
  objective = registry.build(config, 4)
  x = jnp.zeros((1, 128, 128, 3))
  params = jax.eval_shape(objective.generator.init, jax.random.PRNGKey(0), x, jnp.zeros((1, 4)))
  assert len(params['params']['mapping']) == 9
  assert len([k for k in params['params']['att'] if k.startswith('ResidualBlock')]) == 6
  # Constant for 100k iterations, then lowered every 1000 to 0 at 200k.
  lr = lambda s: float(state_lib.learning_rate(1e-4, jnp.asarray(s), 200_000, 100_000, 1000))
  assert lr(0) == lr(100_999) == np.float32(1e-4)
  np.testing.assert_allclose(
    [lr(101_000), lr(101_999), lr(150_500), lr(200_000)], [0.99e-4, 0.99e-4, 0.5e-4, 0.0], rtol=1e-6
  )


def test_config_errors():
  names = [str(i) for i in range(5)]
  config = dcam_config.get_config('tiny')
  config_validation.validate(config, 8, names)
  config.loss.cx_layers = ('relu3_2', 'conv9_1')
  with pytest.raises(config_validation.ConfigError, match='config.loss.cx_layers'):
    config_validation.validate(config, 8, names)
  config = dcam_config.get_config('tiny')
  config.loss.cx_network = 'vgg16'
  with pytest.raises(config_validation.ConfigError, match='config.loss.cx_network'):
    config_validation.validate(config, 8, names)
  with pytest.raises(ValueError, match='unknown modifier'):
    dcam_config.get_config('quick+no_mask')


def test_parameter_count_at_paper_size_by_hand():
  # 64 filters, two stride-2 convs (64 -> 128 -> 256), 4 expressions, control N = 64.
  encoder = 7 * 7 * 3 * 64 + 128 + 4 * 4 * 64 * 128 + 256 + 4 * 4 * 128 * 256 + 512
  res = 2 * 9 * 256 * 256 + 2 * 512  # two bias-free convs, two affine INs
  adain_res = 2 * 9 * 256 * 256 + 2 * (64 * 512 + 512)  # two convs, two f: 64 -> 2 x 256
  trans = (
    encoder
    + 3 * res
    + 3 * adain_res
    + 4 * 4 * 256 * 128
    + (64 * 256 + 256)
    + 4 * 4 * 128 * 64
    + (64 * 128 + 128)
    + 7 * 7 * 64 * 3
  )
  att = encoder + 6 * res + 4 * 4 * 256 * 128 + 256 + 4 * 4 * 128 * 64 + 128 + 7 * 7 * 64 + 1
  mapping = 4 * 512 + 512 + 7 * (512 * 512 + 512) + 512 * 64 + 64
  objective = registry.build(dcam_config.get_config(''), 4)
  x = jnp.zeros((1, 128, 128, 3))
  assert count_params(objective.generator, x, jnp.zeros((1, 4))) == trans + att + mapping
  assert trans + att + mapping == 18_918_593
