"""The adversarial loss of every family, chosen by `config.loss.adversarial`.

Kinds (D's loss on the logits of real and fake images; G's on the fakes'):
  'wgan_gp'  E[D(fake)] - E[D(real)]; G: -E[D(fake)]; plus lambda_gp times the gradient penalty
             on interpolates (Gulrajani et al. 2017; StarGAN and its descendants)
  'hinge'    E[relu(1 - D(real))] + E[relu(1 + D(fake))]; G: -E[D(fake)] (Lim & Ye 2017)
  'ns'       the non-saturating logistic loss as StyleGAN2 writes it: E[softplus(-D(real))] +
             E[softplus(D(fake))]; G: E[softplus(-D(fake))] (Goodfellow et al. 2014)
  'bce'      the same loss as binary cross-entropy against labels (real 1, fake 0; G's fakes 1),
             as the CycleGAN and 2CET-GAN code write it; equal to 'ns' up to float rounding
  'lsgan'    E[(D(real) - 1)^2] + E[D(fake)^2]; G: E[(D(fake) - 1)^2] (Mao et al. 2017)
With any kind, `lambda_r1` > 0 adds the R1 penalty on real images (Mescheder et al. 2018),
0.5 E[||grad D(real)||^2] times lambda_r1; `r1_every` = k > 1 computes it only every k-th D
step with weight k * lambda_r1 (StyleGAN2's lazy regularisation).

A new kind is registered once, where it is written (docs/extending.md):
  adversarial.register('my_loss', critic=my_critic_fn, generator=my_generator_fn)
or, outside the modules the library imports, defined as a `Kind` and named by its dotted path
('my_package.my_losses.MY_LOSS').
"""

from collections.abc import Callable
import dataclasses

import jax
from jax import lax
import jax.numpy as jnp

from jaxpr_gan import run_config
from jaxpr_gan.objectives import losses

LossFn = Callable[..., jnp.ndarray]


@dataclasses.dataclass(frozen=True)
class Kind:
  """critic(real_logits, fake_logits) -> D's loss; generator(fake_logits) -> G's loss;
  `gradient_penalty`: whether lambda_gp weighs WGAN-GP's penalty on interpolates."""

  critic: LossFn
  generator: LossFn
  gradient_penalty: bool = False


_KINDS: dict[str, Kind] = {}


def register(name: str, critic: LossFn, generator: LossFn, gradient_penalty: bool = False) -> None:
  """Makes `--config.loss.adversarial=name` available to every model."""
  if name in _KINDS:
    raise ValueError(f'an adversarial loss named {name!r} is registered already')
  _KINDS[name] = Kind(critic, generator, gradient_penalty)


def kinds() -> list[str]:
  return sorted(_KINDS)


def get(name: str) -> Kind:
  """A registered kind, or the Kind a dotted path names."""
  if name in _KINDS:
    return _KINDS[name]
  if '.' in name:
    kind = run_config.named_object(name, 'config.loss.adversarial')
    if not isinstance(kind, Kind):
      raise ValueError(
        f'config.loss.adversarial {name!r} names a {type(kind).__name__}, not an '
        'objectives.adversarial.Kind'
      )
    return kind
  raise ValueError(
    f'unknown adversarial loss {name!r}; use one of {kinds()}, register it with '
    'jaxpr_gan.objectives.adversarial.register, or name a Kind by its dotted path'
  )


def _bce_critic(real_logits, fake_logits):
  return losses.binary_cross_entropy(real_logits, 1.0) + losses.binary_cross_entropy(
    fake_logits, 0.0
  )


def _bce_generator(fake_logits):
  return losses.binary_cross_entropy(fake_logits, 1.0)


def _lsgan_critic(real_logits, fake_logits):
  return losses.least_squares(real_logits, 1.0) + losses.least_squares(fake_logits, 0.0)


def _lsgan_generator(fake_logits):
  return losses.least_squares(fake_logits, 1.0)


register('wgan_gp', losses.wgan_critic, losses.wgan_generator, gradient_penalty=True)
register('hinge', losses.hinge_critic, losses.wgan_generator)
register('ns', losses.logistic_critic, losses.non_saturating_generator)
register('bce', _bce_critic, _bce_generator)
register('lsgan', _lsgan_critic, _lsgan_generator)


@dataclasses.dataclass(frozen=True)
class Adversarial:
  """A kind with its penalties' weights; pure methods."""

  kind: str = 'wgan_gp'
  lambda_gp: float = 10.0
  lambda_r1: float = 0.0
  r1_every: int = 1

  def critic_loss(
    self,
    critic: Callable,
    real: jnp.ndarray,
    fake: jnp.ndarray,
    real_logits: jnp.ndarray,
    fake_logits: jnp.ndarray,
    rng: jax.Array,
    step,
  ):
    """-> (D's adversarial term, its weighted penalty or None, {'gp' | 'r1': unweighted}).

    `critic` maps images to the logits the kind reads (its gradient gives the penalties);
    `rng` draws WGAN-GP's interpolation weights; `step` (D's) times the lazy R1.
    """
    kind = get(self.kind)
    adv = kind.critic(real_logits, fake_logits)
    penalty, metrics = None, {}
    if kind.gradient_penalty and self.lambda_gp:
      alpha = jax.random.uniform(rng, (real.shape[0], 1, 1, 1))
      metrics['gp'] = losses.gradient_penalty(critic, real, fake, alpha)
      penalty = self.lambda_gp * metrics['gp']
    if self.lambda_r1:
      metrics['r1'] = self._r1(critic, real, step)
      r1 = (self.lambda_r1 * self.r1_every) * metrics['r1']
      penalty = r1 if penalty is None else penalty + r1
    return adv, penalty, metrics

  def _r1(self, critic: Callable, real: jnp.ndarray, step) -> jnp.ndarray:
    if self.r1_every <= 1:
      return losses.r1_penalty(critic, real)
    return lax.cond(
      jnp.asarray(step) % self.r1_every == 0,
      lambda: losses.r1_penalty(critic, real),
      lambda: jnp.zeros((), jnp.float32),
    )

  def generator_loss(self, fake_logits: jnp.ndarray) -> jnp.ndarray:
    return get(self.kind).generator(fake_logits)
