"""The Inception-v3 of FID (TF's 2015-12-05 graph as pytorch-fid ports it), in Flax.

FID, KID and IS numbers are only comparable with the literature when they come from this exact
network: torchvision's Inception-v3 layout with pytorch-fid's FID-specific blocks (average
pools that do not count padding, a max pool in the last block), 1008 classes, batch-norm eps
1e-3, and pytorch-fid's input convention (RGB in [0, 1], bilinearly resized to 299 x 299 without
antialiasing, then scaled to [-1, 1]).

The weights are pytorch-fid's file pt_inception-2015-12-05-6726825d.pth, loaded from a path the
user gives (`load_weights`); nothing is downloaded. Parameter names mirror the file's keys
(`Mixed_5b.branch1x1.conv.weight` -> params['Mixed_5b']['branch1x1']['conv']['kernel'], HWIO),
so the mapping is one to one and any missing or misshapen key is named.
"""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

FEATURE_DIM = 2048
NUM_LOGITS = 1008
BN_EPS = 1e-3


class InceptionWeightsError(ValueError):
  """A weight file that is missing or does not hold the FID Inception's tensors."""


class BasicConv(nn.Module):
  """Bias-free conv, batch norm with its running statistics (inference), ReLU."""

  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    kh, kw = self.kernel
    w = self.param('kernel', nn.initializers.lecun_normal(), (kh, kw, x.shape[-1], self.features))
    ph, pw = self.padding
    y = jax.lax.conv_general_dilated(
      x,
      w,
      (self.stride, self.stride),
      ((ph, ph), (pw, pw)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
    )
    bn = {
      name: self.param(name, init, (self.features,))
      for name, init in (
        ('weight', nn.initializers.ones),
        ('bias', nn.initializers.zeros),
        ('running_mean', nn.initializers.zeros),
        ('running_var', nn.initializers.ones),
      )
    }
    y = (y - bn['running_mean']) * jax.lax.rsqrt(bn['running_var'] + BN_EPS)
    return nn.relu(y * bn['weight'] + bn['bias'])


def _conv(name, features, kernel, stride=1, padding=0):
  k = kernel if isinstance(kernel, tuple) else (kernel, kernel)
  p = padding if isinstance(padding, tuple) else (padding, padding)
  return BasicConv(features, k, stride, p, name=name)


def _avg_pool3(x):
  """3x3, stride 1, padding 1, padding not counted (pytorch-fid's change to torchvision)."""
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool3s2(x):
  return nn.max_pool(x, (3, 3), (2, 2), 'VALID')


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = _conv('branch1x1', 64, 1)(x)
    b5 = _conv('branch5x5_2', 64, 5, padding=2)(_conv('branch5x5_1', 48, 1)(x))
    b3 = _conv('branch3x3dbl_1', 64, 1)(x)
    b3 = _conv('branch3x3dbl_3', 96, 3, padding=1)(_conv('branch3x3dbl_2', 96, 3, padding=1)(b3))
    bp = _conv('branch_pool', self.pool_features, 1)(_avg_pool3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = _conv('branch3x3', 384, 3, stride=2)(x)
    bd = _conv('branch3x3dbl_1', 64, 1)(x)
    bd = _conv('branch3x3dbl_2', 96, 3, padding=1)(bd)
    bd = _conv('branch3x3dbl_3', 96, 3, stride=2)(bd)
    return jnp.concatenate([b3, bd, _max_pool3s2(x)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = _conv('branch1x1', 192, 1)(x)
    b7 = _conv('branch7x7_1', c7, 1)(x)
    b7 = _conv('branch7x7_2', c7, (1, 7), padding=(0, 3))(b7)
    b7 = _conv('branch7x7_3', 192, (7, 1), padding=(3, 0))(b7)
    bd = _conv('branch7x7dbl_1', c7, 1)(x)
    bd = _conv('branch7x7dbl_2', c7, (7, 1), padding=(3, 0))(bd)
    bd = _conv('branch7x7dbl_3', c7, (1, 7), padding=(0, 3))(bd)
    bd = _conv('branch7x7dbl_4', c7, (7, 1), padding=(3, 0))(bd)
    bd = _conv('branch7x7dbl_5', 192, (1, 7), padding=(0, 3))(bd)
    bp = _conv('branch_pool', 192, 1)(_avg_pool3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = _conv('branch3x3_2', 320, 3, stride=2)(_conv('branch3x3_1', 192, 1)(x))
    b7 = _conv('branch7x7x3_1', 192, 1)(x)
    b7 = _conv('branch7x7x3_2', 192, (1, 7), padding=(0, 3))(b7)
    b7 = _conv('branch7x7x3_3', 192, (7, 1), padding=(3, 0))(b7)
    b7 = _conv('branch7x7x3_4', 192, 3, stride=2)(b7)
    return jnp.concatenate([b3, b7, _max_pool3s2(x)], axis=-1)


class InceptionE(nn.Module):
  """`max_pool`: the last block's pool (pytorch-fid's FIDInceptionE_2); else an average pool
  that does not count padding (FIDInceptionE_1)."""

  max_pool: bool = False

  @nn.compact
  def __call__(self, x):
    b1 = _conv('branch1x1', 320, 1)(x)
    b3 = _conv('branch3x3_1', 384, 1)(x)
    b3 = jnp.concatenate(
      [
        _conv('branch3x3_2a', 384, (1, 3), padding=(0, 1))(b3),
        _conv('branch3x3_2b', 384, (3, 1), padding=(1, 0))(b3),
      ],
      axis=-1,
    )
    bd = _conv('branch3x3dbl_2', 384, 3, padding=1)(_conv('branch3x3dbl_1', 448, 1)(x))
    bd = jnp.concatenate(
      [
        _conv('branch3x3dbl_3a', 384, (1, 3), padding=(0, 1))(bd),
        _conv('branch3x3dbl_3b', 384, (3, 1), padding=(1, 0))(bd),
      ],
      axis=-1,
    )
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
    else:
      pooled = _avg_pool3(x)
    bp = _conv('branch_pool', 192, 1)(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInception(nn.Module):
  """Images already resized and scaled to [-1, 1], (B, 299, 299, 3) -> (pool3 features (B, 2048),
  logits (B, 1008))."""

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    x = _conv('Conv2d_1a_3x3', 32, 3, stride=2)(x)
    x = _conv('Conv2d_2a_3x3', 32, 3)(x)
    x = _conv('Conv2d_2b_3x3', 64, 3, padding=1)(x)
    x = _max_pool3s2(x)
    x = _conv('Conv2d_3b_1x1', 80, 1)(x)
    x = _conv('Conv2d_4a_3x3', 192, 3)(x)
    x = _max_pool3s2(x)
    x = InceptionA(32, name='Mixed_5b')(x)
    x = InceptionA(64, name='Mixed_5c')(x)
    x = InceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)
    x = InceptionC(128, name='Mixed_6b')(x)
    x = InceptionC(160, name='Mixed_6c')(x)
    x = InceptionC(160, name='Mixed_6d')(x)
    x = InceptionC(192, name='Mixed_6e')(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE(name='Mixed_7b')(x)
    x = InceptionE(max_pool=True, name='Mixed_7c')(x)
    pool = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(NUM_LOGITS, name='fc')(pool)
    return pool, logits


def preprocess(images: jnp.ndarray) -> jnp.ndarray:
  """uint8 RGB (B, H, W, 3) -> pytorch-fid's input: [0, 1], bilinear to 299 x 299 as
  `F.interpolate(align_corners=False)` (no antialiasing), then 2x - 1."""
  x = images.astype(jnp.float32) / 255.0
  x = jax.image.resize(x, (x.shape[0], 299, 299, x.shape[-1]), 'bilinear', antialias=False)
  return 2.0 * x - 1.0


@functools.lru_cache(maxsize=1)
def _abstract_params():
  return jax.eval_shape(FIDInception().init, jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 3)))[
    'params'
  ]


def params_from_state_dict(state: dict[str, np.ndarray], where: str = 'state dict') -> dict:
  """pytorch-fid's state dict (numpy arrays) -> our params; every key must match one to one."""
  abstract = _abstract_params()
  flat = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(abstract)[0]:
    names = [k.key for k in path]
    if names[-1] == 'kernel':
      key = '.'.join(names[:-1] + ['weight'])
      if names[0] != 'fc':
        key = '.'.join(names[:-1] + ['conv', 'weight'])
    elif names[0] == 'fc':
      key = '.'.join(names)
    else:
      key = '.'.join(names[:-1] + ['bn', names[-1]])
    flat[key] = (names, leaf.shape)
  missing = sorted(set(flat) - set(state))
  surplus = sorted(k for k in set(state) - set(flat) if not k.endswith('num_batches_tracked'))
  if missing or surplus:
    raise InceptionWeightsError(
      f'{where} is not the FID Inception (pytorch-fid pt_inception-2015-12-05): missing '
      f'{missing[:5]}{"..." if len(missing) > 5 else ""} ({len(missing)}), unexpected '
      f'{surplus[:5]}{"..." if len(surplus) > 5 else ""} ({len(surplus)})'
    )
  params = {}
  for key, (names, shape) in flat.items():
    value = np.asarray(state[key], np.float32)
    if value.ndim == 4:
      value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    elif names[-1] == 'kernel':
      value = value.T  # fc (out, in) -> (in, out)
    if value.shape != tuple(shape):
      raise InceptionWeightsError(
        f'{where}: {key} has shape {value.shape} after transposing, '
        f'the FID Inception needs {tuple(shape)}'
      )
    node = params
    for n in names[:-1]:
      node = node.setdefault(n, {})
    node[names[-1]] = value
  return params


def load_weights(path: str) -> dict:
  """The FID Inception's params from pytorch-fid's .pth file (needs torch to read it)."""
  if not path or not os.path.isfile(path):
    raise InceptionWeightsError(f'FID Inception weight file {path!r} does not exist')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise InceptionWeightsError(f'reading {path} needs torch (pip install torch)') from e
  state = torch.load(path, map_location='cpu', weights_only=True)
  state = {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, 'detach')}
  return params_from_state_dict(state, path)


@functools.lru_cache(maxsize=1)
def features_fn():
  """jitted (params, uint8 images (B, H, W, 3)) -> (pool features (B, 2048), logits (B, 1008));
  one function per process, so each batch shape compiles once."""
  net = FIDInception()
  return jax.jit(lambda params, images: net.apply({'params': params}, preprocess(images)))
