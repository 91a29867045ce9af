"""VGG19 (Simonyan & Zisserman) convolutional trunk as a fixed feature network for losses.

Layers are named as the papers name them: conv{block}_{i} (parameters), relu{block}_{i} and
pool{block} (outputs); 3x3 convolutions with bias, padding 1, ReLU, 2x2 max pooling. The module
stops at the deepest layer asked for, so a loss on relu4_2 never computes block 5.

ImageNet weights come from a file the user gives; nothing is downloaded:
  Keras  .h5: `keras.applications.VGG19` weights, the legacy format of the published
         vgg19_weights_tf_dim_ordering_tf_kernels(_notop).h5 and of `model.save('x.h5')`, or
         Keras 3's `model.save_weights('x.weights.h5')`. Inputs: BGR, 0..255, ImageNet mean
         subtracted ('caffe' preprocessing).
  PyTorch .pth: torchvision's `vgg19().state_dict()` (keys features.{index}.weight/bias).
         Inputs: RGB in 0..1 normalised by the ImageNet mean and standard deviation ('torch').
`load_weights` returns the parameters and the preprocessing that matches them.
"""

from collections.abc import Sequence
import os

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxpr_gan import errors
from jaxpr_gan.nn import layers

# (block, convolutions, channels) of VGG19 (configuration E) and VGG16 (D).
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
BLOCKS_BY_DEPTH = {19: BLOCKS, 16: ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))}


def layer_names(depth: int = 19) -> tuple[str, ...]:
  """conv, relu, ..., pool in order: also the indices of torchvision's `features` Sequential."""
  return tuple(
    name
    for b, n, _ in BLOCKS_BY_DEPTH[depth]
    for name in [f'{kind}{b}_{i}' for i in range(1, n + 1) for kind in ('conv', 'relu')]
    + [f'pool{b}']
  )


def conv_names(depth: int = 19) -> tuple[str, ...]:
  return tuple(n for n in layer_names(depth) if n.startswith('conv'))


LAYER_NAMES, CONV_NAMES = layer_names(19), conv_names(19)
PREPROCESSING = ('caffe', 'torch')
_IMAGENET_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)
_IMAGENET_RGB_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_RGB_STD = np.array([0.229, 0.224, 0.225], np.float32)


class VGGWeightsError(errors.BadInput):
  """A VGG19 weight file that is missing, of an unknown kind, or not a VGG19."""


def preprocess(x: jnp.ndarray, kind: str) -> jnp.ndarray:
  """RGB images in [-1, 1] -> the input the weights were trained on."""
  if kind == 'caffe':
    return ((x + 1.0) * 127.5)[..., ::-1] - _IMAGENET_BGR_MEAN
  if kind == 'torch':
    return ((x + 1.0) * 0.5 - _IMAGENET_RGB_MEAN) / _IMAGENET_RGB_STD
  raise ValueError(f'unknown VGG preprocessing {kind!r}; use one of {PREPROCESSING}.')


class VGG19(nn.Module):
  """-> {name: activation} for every name in `outputs` (see layer_names); NHWC input.
  `depth` 16 makes it VGG16 (LPIPS's backbone)."""

  outputs: Sequence[str] = ('relu4_2',)
  depth: int = 19
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> dict[str, jnp.ndarray]:
    names = layer_names(self.depth)
    unknown = [o for o in self.outputs if o not in names]
    if unknown or not self.outputs:
      raise ValueError(f'unknown VGG{self.depth} layers {unknown}; choose from {names}.')
    last = max(names.index(o) for o in self.outputs)
    found, h = {}, x.astype(self.dtype)
    for name in names[: last + 1]:
      if name.startswith('conv'):
        h = layers.conv(_channels(name), 3, 1, 1, dtype=self.dtype, name=name)(h)
      elif name.startswith('relu'):
        h = nn.relu(h)
      else:
        h = nn.max_pool(h, (2, 2), strides=(2, 2))
      if name in self.outputs:
        found[name] = h
    return found


def _channels(conv_name: str) -> int:
  block = int(conv_name[4])
  return dict((b, c) for b, _, c in BLOCKS)[block]


def convs_needed(outputs: Sequence[str], depth: int = 19) -> tuple[str, ...]:
  """The convolutions a VGG truncated after the deepest of `outputs` holds."""
  names = layer_names(depth)
  last = max(names.index(o) for o in outputs)
  return tuple(n for n in names[: last + 1] if n.startswith('conv'))


def _keras_name(conv_name: str) -> str:
  block, i = conv_name[4:].split('_')
  return f'block{block}_conv{i}'


def _kernel_and_bias(arrays: Sequence[np.ndarray], where: str) -> dict[str, np.ndarray]:
  kernels = [a for a in arrays if a.ndim == 4]
  biases = [a for a in arrays if a.ndim == 1]
  if len(kernels) != 1 or len(biases) != 1:
    raise VGGWeightsError(
      f'{where}: expected one 4-D kernel and one bias, found shapes {[a.shape for a in arrays]}'
    )
  return {'kernel': kernels[0].astype(np.float32), 'bias': biases[0].astype(np.float32)}


def _read_keras_h5(path: str) -> dict[str, dict[str, np.ndarray]]:
  import h5py  # pylint: disable=g-import-not-at-top

  found = {}
  with h5py.File(path, 'r') as f:
    root = f['model_weights'] if 'model_weights' in f else f
    if 'layer_names' in root.attrs:  # legacy Keras (the published files, model.save('.h5'))
      for layer in root.attrs['layer_names']:
        layer = layer.decode() if isinstance(layer, bytes) else str(layer)
        names = [
          n.decode() if isinstance(n, bytes) else str(n)
          for n in root[layer].attrs.get('weight_names', [])
        ]
        if names:
          found[layer] = _kernel_and_bias(
            [np.asarray(root[layer][n]) for n in names], f'{path}: layer {layer}'
          )
    elif 'layers' in root:  # Keras 3 .weights.h5: layers/<object>/vars/{0,1}, named in attrs
      for group in root['layers'].values():
        if 'vars' not in group or not len(group['vars']):
          continue
        layer = group['vars'].attrs.get('name', '')
        layer = layer.decode() if isinstance(layer, bytes) else str(layer)
        found[layer] = _kernel_and_bias(
          [np.asarray(v) for v in group['vars'].values()], f'{path}: layer {layer}'
        )
    else:
      raise VGGWeightsError(
        f'{path} is an HDF5 file but not Keras weights (no layer_names '
        'attribute and no layers/ group)'
      )
  return found


def _read_torchvision(path: str) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise VGGWeightsError(
      f'{path}: reading a PyTorch .pth file needs torch '
      '(pip install torch); or give the Keras .h5 weights'
    ) from e
  state = torch.load(path, map_location='cpu', weights_only=True)
  if isinstance(state, dict) and 'state_dict' in state:
    state = state['state_dict']
  if not isinstance(state, dict):
    raise VGGWeightsError(f'{path} does not hold a state dict (found {type(state).__name__})')
  return {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, 'detach')}


def load_weights(path: str, convs: Sequence[str] = CONV_NAMES, depth: int = 19):
  """-> (params {'convB_i': {'kernel' HWIO, 'bias'}} for `convs`, preprocessing kind); `depth`
  16 reads a VGG16 (torchvision's vgg16 state dict, or Keras VGG16 weights)."""
  all_convs, names = conv_names(depth), layer_names(depth)
  if not path:
    raise VGGWeightsError('no VGG19 weight file given')
  if not os.path.isfile(path):
    raise VGGWeightsError(f'VGG19 weight file {path!r} does not exist')
  params = {}
  if path.endswith('.h5'):
    layers_found, kind = _read_keras_h5(path), 'caffe'
    for conv in convs:
      if _keras_name(conv) not in layers_found:
        raise VGGWeightsError(
          f'{path} has no layer {_keras_name(conv)} (has '
          f'{sorted(layers_found)}); is it a VGG{depth}?'
        )
      params[conv] = layers_found[_keras_name(conv)]
  elif path.endswith(('.pth', '.pt')):
    state, kind = _read_torchvision(path), 'torch'
    for conv in convs:
      key = f'features.{names.index(conv)}'
      if f'{key}.weight' not in state or f'{key}.bias' not in state:
        raise VGGWeightsError(
          f'{path} has no {key}.weight/bias (torchvision vgg{depth} key '
          f'names); is it a torchvision VGG{depth} state dict?'
        )
      params[conv] = {
        'kernel': state[f'{key}.weight'].transpose(2, 3, 1, 0).astype(np.float32),
        'bias': state[f'{key}.bias'].astype(np.float32),
      }
  else:
    raise VGGWeightsError(
      f'{path}: unknown VGG19 weight file kind; give a Keras .h5 or a torchvision .pth state dict'
    )
  for conv in convs:  # the widths of this VGG, not another
    i = all_convs.index(conv)
    want = (3, 3, _channels(all_convs[i - 1]) if i else 3, _channels(conv))
    if params[conv]['kernel'].shape != want:
      raise VGGWeightsError(
        f'{path}: {conv} kernel has shape {params[conv]["kernel"].shape}, VGG{depth} has {want}'
      )
  if depth == 16 and path.endswith(('.pth', '.pt')) and 'features.34.weight' in state:
    raise VGGWeightsError(
      f"{path} is a VGG19 (it has features.34); LPIPS needs torchvision's vgg16 state dict"
    )
  return params, kind
