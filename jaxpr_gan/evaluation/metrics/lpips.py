"""LPIPS (Zhang et al. 2018), VGG variant, as the `lpips` package computes it.

Images in [-1, 1] are shifted and scaled channel-wise (LPIPS's ScalingLayer), passed through
VGG16's relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3; each feature map is unit-normalised over
channels, the squared differences are weighted by the learned 1x1 "lin" layers, averaged over
space and summed over the five layers. Two files the user gives: torchvision's vgg16 state dict
(the backbone) and the lpips package's weights/v0.1/vgg.pth (the lin layers, keys
lin{k}.model.1.weight). Nothing is downloaded.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxpr_gan.models import vgg

LAYERS = ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3', 'relu5_3')
CHANNELS = (64, 128, 256, 512, 512)
_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
_SCALE = np.array([0.458, 0.448, 0.450], np.float32)


class LPIPSWeightsError(ValueError):
  """A missing or malformed LPIPS file."""


def load_linear(path: str) -> list[np.ndarray]:
  """The five lin layers' weights, each (C,), from the lpips package's vgg.pth."""
  if not path or not os.path.isfile(path):
    raise LPIPSWeightsError(f'LPIPS linear-layer file {path!r} does not exist')
  import torch  # pylint: disable=g-import-not-at-top

  state = torch.load(path, map_location='cpu', weights_only=True)
  weights = []
  for k, c in enumerate(CHANNELS):
    key = f'lin{k}.model.1.weight'
    if key not in state or tuple(state[key].shape) != (1, c, 1, 1):
      raise LPIPSWeightsError(
        f'{path} has no {key} of shape (1, {c}, 1, 1); give the lpips '
        "package's weights/v0.1/vgg.pth"
      )
    weights.append(state[key].numpy().reshape(c).astype(np.float32))
  return weights


def load(backbone_path: str, linear_path: str) -> dict:
  """{'vgg': VGG16 params to relu5_3, 'lin': [5 weight vectors]}."""
  params, kind = vgg.load_weights(backbone_path, vgg.convs_needed(LAYERS, 16), depth=16)
  if kind != 'torch':
    raise LPIPSWeightsError(
      f"{backbone_path}: LPIPS was trained on torchvision's vgg16; give its .pth state dict"
    )
  return {'vgg': params, 'lin': load_linear(linear_path)}


def distance(params: dict, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
  """LPIPS between images in [-1, 1], (B, H, W, 3) each -> (B,)."""
  net = vgg.VGG19(outputs=LAYERS, depth=16)
  fx, fy = (net.apply({'params': params['vgg']}, (im - _SHIFT) / _SCALE) for im in (x, y))
  total = 0.0
  for name, w in zip(LAYERS, params['lin']):
    nx = fx[name] / (jnp.sqrt(jnp.sum(fx[name] ** 2, axis=-1, keepdims=True)) + 1e-10)
    ny = fy[name] / (jnp.sqrt(jnp.sum(fy[name] ** 2, axis=-1, keepdims=True)) + 1e-10)
    total = total + jnp.mean(jnp.sum((nx - ny) ** 2 * w, axis=-1), axis=(1, 2))
  return total


distance_jit = jax.jit(distance)
