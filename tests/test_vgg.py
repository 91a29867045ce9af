"""VGG19 (the contextual loss's network): equal to Keras's and to a torchvision-layout VGG19 on the
same weights, read from their weight files; the weight-file errors."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxpr_gan.models import vgg
from tests.test_dcam import _write_legacy_keras_h5


def test_vgg19_equals_keras_vgg19_on_the_same_random_weights(tmp_path):
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  import keras  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  model = keras.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3))
  rng = np.random.default_rng(0)
  for layer in model.layers:  # random biases too (Keras starts them at 0)
    if layer.weights:
      kernel, bias = layer.get_weights()
      layer.set_weights([kernel, rng.normal(size=bias.shape).astype(np.float32) * 0.1])
  legacy, keras3 = str(tmp_path / 'vgg19.h5'), str(tmp_path / 'vgg19.weights.h5')
  model.save(legacy)
  model.save_weights(keras3)
  ours_to_keras = {
    'relu1_2': 'block1_conv2',
    'pool2': 'block2_pool',
    'relu3_2': 'block3_conv2',
    'relu4_4': 'block4_conv4',
    'relu5_1': 'block5_conv1',
    'pool5': 'block5_pool',
  }
  probe = keras.Model(model.input, [model.get_layer(n).output for n in ours_to_keras.values()])
  images = rng.uniform(0, 255, size=(2, 32, 32, 3)).astype(np.float32)
  inputs = keras.applications.vgg19.preprocess_input(images.copy())
  np.testing.assert_allclose(
    np.asarray(vgg.preprocess(jnp.asarray(images / 127.5 - 1), 'caffe')), inputs, atol=1e-3
  )
  want = [np.asarray(a) for a in probe(inputs)]
  for path in (legacy, keras3):
    params, kind = vgg.load_weights(path)
    assert kind == 'caffe' and sorted(params) == sorted(vgg.CONV_NAMES)
    got = vgg.VGG19(outputs=tuple(ours_to_keras)).apply({'params': params}, jnp.asarray(inputs))
    for name, theirs in zip(ours_to_keras, want):
      assert got[name].shape == theirs.shape
      scale = max(1.0, float(np.abs(theirs).max()))
      np.testing.assert_allclose(
        np.asarray(got[name]) / scale, theirs / scale, atol=1e-4, err_msg=f'{name} ({path})'
      )


def test_vgg19_equals_torchvision_layout_on_the_same_random_weights(tmp_path):
  torch = pytest.importorskip('torch')
  from tests import torch_official  # pylint: disable=g-import-not-at-top
  from tests import torch_official_features  # pylint: disable=g-import-not-at-top

  net = torch_official.randomize(torch_official_features.VGG19(), 0).eval()
  path = str(tmp_path / 'vgg19.pth')
  torch.save(net.state_dict(), path)
  params, kind = vgg.load_weights(path, vgg.convs_needed(['relu4_2']))
  assert kind == 'torch' and list(params) == list(vgg.CONV_NAMES[:10])
  rng = np.random.default_rng(1)
  x = rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
  inputs = np.asarray(vgg.preprocess(jnp.asarray(x), 'torch'))
  # torchvision's Normalize of the [0, 1] image.
  mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
  np.testing.assert_allclose(inputs, ((x + 1) / 2 - mean) / std, atol=1e-5)
  with torch.no_grad():
    t = torch.from_numpy(np.ascontiguousarray(inputs.transpose(0, 3, 1, 2)))
    want = {'relu3_2': net.features[:14](t), 'relu4_2': net.features[:23](t)}
  got = vgg.VGG19(outputs=('relu3_2', 'relu4_2')).apply({'params': params}, jnp.asarray(inputs))
  for name, theirs in want.items():
    theirs = theirs.numpy().transpose(0, 2, 3, 1)
    scale = max(1.0, float(np.abs(theirs).max()))
    np.testing.assert_allclose(np.asarray(got[name]) / scale, theirs / scale, atol=1e-4)


def test_weight_file_errors(tmp_path):
  with pytest.raises(vgg.VGGWeightsError, match='does not exist'):
    vgg.load_weights(str(tmp_path / 'nope.h5'))
  other = tmp_path / 'weights.npz'
  other.write_bytes(b'x')
  with pytest.raises(vgg.VGGWeightsError, match='unknown VGG19 weight file kind'):
    vgg.load_weights(str(other))
  rng = np.random.default_rng(0)
  params = {
    'conv1_1': {
      'kernel': rng.normal(size=(3, 3, 3, 64)).astype(np.float32),
      'bias': np.zeros(64, np.float32),
    }
  }
  path = str(tmp_path / 'short.h5')
  _write_legacy_keras_h5(path, params)
  with pytest.raises(vgg.VGGWeightsError, match='no layer block1_conv2'):
    vgg.load_weights(path, ('conv1_1', 'conv1_2'))
  loaded, _ = vgg.load_weights(path, ('conv1_1',))
  np.testing.assert_array_equal(loaded['conv1_1']['kernel'], params['conv1_1']['kernel'])
  wrong = {'conv1_1': {'kernel': rng.normal(size=(3, 3, 3, 32)), 'bias': np.zeros(32)}}
  _write_legacy_keras_h5(path, wrong)
  with pytest.raises(vgg.VGGWeightsError, match='VGG19 has'):
    vgg.load_weights(path, ('conv1_1',))
