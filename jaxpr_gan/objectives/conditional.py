"""Objectives of the label-conditioned family (StarGAN and its descendants).

D: adversarial (WGAN-GP in StarGAN's code; `loss.adversarial`) + expression classification of
   real faces.
G: adversarial + classification of the translated face + L1 reconstruction after translating back.
Weights come from `config.loss`; the networks are any G(x, c) and D(x) -> (src, cls, ...).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpr_gan.images import to_float
from jaxpr_gan.objectives import losses
from jaxpr_gan.objectives.base import Objective

Params = Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConditionalGAN(Objective):
  """Networks and loss weights of a StarGAN-style model; all methods are pure."""

  generator: nn.Module
  discriminator: nn.Module
  num_classes: int
  lambda_cls: float = 1.0
  lambda_rec: float = 10.0

  def init(self, rng: jax.Array, images: jnp.ndarray) -> dict[str, Params]:
    g_rng, d_rng = jax.random.split(rng)
    x = to_float(images)
    c = jnp.zeros((x.shape[0], self.num_classes), jnp.float32)
    return {
      'g': self.generator.init(g_rng, x, c)['params'],
      'd': self.discriminator.init(d_rng, x)['params'],
    }

  def condition(self, target: jnp.ndarray, rho: jnp.ndarray | None = None) -> jnp.ndarray:
    """The generator's conditioning vector for integer target classes: one-hot c."""
    del rho  # no intensity in this family; see objectives/intensity.py
    return jax.nn.one_hot(target, self.num_classes)

  def translate(
    self, g_params: Params, x: jnp.ndarray, target: jnp.ndarray, rho: jnp.ndarray | None = None
  ) -> jnp.ndarray:
    """Float images in [-1, 1] and integer target classes (intensities rho) -> images."""
    return self.translate_labels(g_params, x, self.condition(target, rho))

  def translate_labels(self, g_params: Params, x: jnp.ndarray, c: jnp.ndarray) -> jnp.ndarray:
    """Float images and explicit float label vectors c (B, num_classes) -> images; e.g. several
    CelebA attributes at once (`jaxpr_gan.attributes`). `translate` is the one-hot case."""
    return self.generator.apply({'params': g_params}, x, c)

  def sample_cells(self, g_params: Params, batch: dict[str, jnp.ndarray]) -> jnp.ndarray:
    """Rows: the faces; columns: the face, then its translation to every class."""
    x = to_float(batch['image'])
    n = x.shape[0]
    xs = jnp.repeat(x, self.num_classes, axis=0)
    targets = jnp.tile(jnp.arange(self.num_classes), n)
    out = self.translate(g_params, xs, targets).reshape(n, self.num_classes, *x.shape[1:])
    return jnp.concatenate([x[:, None], out], axis=1)

  def _discriminate(self, d_params: Params, x: jnp.ndarray):
    return self.discriminator.apply({'params': d_params}, x)

  def _targets(self, rng: jax.Array, labels: jnp.ndarray):
    """-> (target classes, intensities or None). StarGAN's: the batch's own labels, shuffled."""
    return jax.random.permutation(rng, labels), None

  def _reconstruction_condition(self, d_params: Params, x: jnp.ndarray, labels: jnp.ndarray):
    """The condition that translates a fake back to x (eq. 2): the source labels."""
    del d_params, x
    return self.condition(labels)

  def _code_terms(self, fake_out, targets, rho, for_generator: bool):
    """Further weighted loss terms on D's outputs for the fakes: none in this family."""
    del fake_out, targets, rho, for_generator
    return 0.0, {}

  def d_loss(
    self, d_params: Params, g_params: Params, batch: dict[str, jnp.ndarray], rng: jax.Array, step=0
  ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    perm_rng, alpha_rng = jax.random.split(rng)
    x = to_float(batch['image'])
    labels = batch['label']
    targets, rho = self._targets(perm_rng, labels)
    fake = jax.lax.stop_gradient(self.translate(g_params, x, targets, rho))
    real_src, real_cls, *_ = self._discriminate(d_params, x)
    fake_out = self._discriminate(d_params, fake)
    critic = lambda z: self._discriminate(d_params, z)[0]
    adv, penalty, adv_metrics = self.adv.critic_loss(
      critic, x, fake, real_src, fake_out[0], alpha_rng, step
    )
    cls = losses.softmax_cross_entropy(real_cls, labels)
    extra, extra_metrics = self._code_terms(fake_out, targets, rho, for_generator=False)
    total = adv + self.lambda_cls * cls
    if penalty is not None:
      total = total + penalty
    total = total + extra
    acc = jnp.mean(jnp.argmax(real_cls, -1) == labels)
    return total, {
      'D/loss': total,
      'D/adv': adv,
      'D/cls': cls,
      'D/cls_acc': acc,
      **{f'D/{k}': v for k, v in adv_metrics.items()},
      **extra_metrics,
    }

  def g_loss(
    self, g_params: Params, d_params: Params, batch: dict[str, jnp.ndarray], rng: jax.Array, step=0
  ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    del step
    x = to_float(batch['image'])
    labels = batch['label']
    targets, rho = self._targets(rng, labels)
    fake = self.translate(g_params, x, targets, rho)
    fake_out = self._discriminate(d_params, fake)
    adv = self.adv.generator_loss(fake_out[0])
    cls = losses.softmax_cross_entropy(fake_out[1], targets)
    total, metrics = adv + self.lambda_cls * cls, {'G/adv': adv, 'G/cls': cls}
    if self.lambda_rec:  # DCAM-GAN keeps identity by the contextual loss instead
      back = self._reconstruction_condition(d_params, x, labels)
      rec = self.generator.apply({'params': g_params}, fake, back)
      metrics['G/rec'] = losses.l1(rec, x)
      total += self.lambda_rec * metrics['G/rec']
    for terms in (
      self._code_terms(fake_out, targets, rho, for_generator=True),
      self._image_terms(batch, x, fake),
    ):
      total += terms[0]
      metrics.update(terms[1])
    return total, {'G/loss': total, **metrics}

  def _image_terms(self, batch, x: jnp.ndarray, fake: jnp.ndarray):
    """Further weighted loss terms comparing the fakes with their inputs: none here."""
    del batch, x, fake
    return 0.0, {}
