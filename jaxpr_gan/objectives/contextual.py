"""DCAM-GAN's objective: the conditional family's, plus a contextual loss on fixed VGG19 features.

G: adversarial + classification of the translated face + lambda_cx * L_cx(VGG(G(x, c)), VGG(x))
summed over `cx_layers` (eq. 13-14); no reconstruction unless `lambda_rec` asks for it.
D: as the conditional family (WGAN-GP, classification of real faces; eq. 15).

The feature network's weights are training state that is never updated: they live in the
state's `aux`, so the compiled step takes them as an argument (not as constants baked into the
program), they are replicated like the rest, and checkpoints carry them, so a resumed run, or
one moved to another machine, keeps the network it started with.
"""

import dataclasses
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan.models import vgg
from jaxpr_gan.objectives import losses
from jaxpr_gan.objectives.conditional import ConditionalGAN

# 'vgg19': ImageNet weights from the file at config.loss.vgg19_weights.
# 'vgg19_random': VGG19 with a fixed random initialisation (seeded): no file, for tests and
# machines without the weights; the loss then compares random features.
FEATURE_NETWORKS = ('vgg19', 'vgg19_random')
WEIGHTS_KEY = 'config.loss.vgg19_weights'


class MissingWeightsError(errors.NotFound):
  """The contextual loss needs VGG19 weights that were not given."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContextualGAN(ConditionalGAN):
  """ConditionalGAN with a contextual loss between VGG19 features of G(x, c) and x."""

  lambda_cx: float = 0.1
  cx_layers: tuple[str, ...] = ('relu3_2', 'relu4_2')
  cx_bandwidth: float = 0.5
  cx_network: str = 'vgg19'  # one of FEATURE_NETWORKS
  vgg19_weights: str = ''  # the weights file of 'vgg19'
  seed: int = 0  # of 'vgg19_random'

  @property
  def preprocessing(self) -> str:
    """The input the weights were trained on: torchvision's .pth files 'torch', Keras 'caffe'."""
    return 'torch' if self.vgg19_weights.endswith(('.pth', '.pt')) else 'caffe'

  @property
  def _vgg(self) -> nn.Module:
    return vgg.VGG19(outputs=tuple(self.cx_layers))

  def init_aux(self, image_size: int) -> Any:
    if not self.lambda_cx:
      return {}
    x = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
    return {'features': self._vgg.init(jax.random.PRNGKey(self.seed), x)['params']}

  def pretrained_aux(self, aux) -> tuple[Any, dict]:
    """Reads the VGG19 weights file for a fresh run; -> (aux, what the loss uses)."""
    if not self.lambda_cx:
      return aux, {'contextual_loss': None}
    record = {
      'network': self.cx_network,
      'layers': list(self.cx_layers),
      'bandwidth': self.cx_bandwidth,
    }
    if self.cx_network == 'vgg19_random':
      return aux, {'contextual_loss': dict(record, weights=f'random (seed {self.seed})')}
    if not self.vgg19_weights or not os.path.isfile(self.vgg19_weights):
      given = f'{self.vgg19_weights!r} does not exist' if self.vgg19_weights else 'is empty'
      raise MissingWeightsError(
        f'{WEIGHTS_KEY} {given}: the contextual loss needs ImageNet VGG19 weights. Set '
        f'--{WEIGHTS_KEY[7:]}=/path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 '
        '(Keras) or /path/to/vgg19.pth (torchvision state dict); nothing is downloaded. Or '
        'choose --config.loss.cx_network=vgg19_random (random features), or '
        '--config.loss.lambda_cx=0.'
      )
    params, kind = vgg.load_weights(self.vgg19_weights, vgg.convs_needed(self.cx_layers))
    if kind != self.preprocessing:
      raise ValueError(
        f'{self.vgg19_weights} expects {kind!r} preprocessing but the objective '
        f'was built for {self.preprocessing!r}'
      )
    current = aux['features']
    loaded = {
      name: {
        k: jax.device_put(np.asarray(v), current[name][k].sharding) for k, v in params[name].items()
      }
      for name in current
    }
    record.update(
      weights=os.path.abspath(self.vgg19_weights),
      sha256=files.sha256(self.vgg19_weights),
      preprocessing=kind,
    )
    return dict(aux, features=loaded), {'contextual_loss': record}

  def g_inputs(self, aux, batch: dict[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
    return dict(batch, vgg_params=aux['features']) if self.lambda_cx else batch

  def features(self, vgg_params, images: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """VGG19 activations at `cx_layers` of images in [-1, 1]."""
    return self._vgg.apply({'params': vgg_params}, vgg.preprocess(images, self.preprocessing))

  def _image_terms(self, batch, x: jnp.ndarray, fake: jnp.ndarray):
    if not self.lambda_cx:
      return 0.0, {}
    target = jax.lax.stop_gradient(self.features(batch['vgg_params'], x))
    out = self.features(batch['vgg_params'], fake)
    cx = sum(losses.contextual(out[l], target[l], self.cx_bandwidth) for l in self.cx_layers)
    return self.lambda_cx * cx, {'G/cx': cx}
