"""CycleGAN's objective (Zhu et al. 2017; Face2Anime, Lin et al. 2018): two unpaired domains.

G_ab: A -> B and G_ba: B -> A (params['g'] = {'a2b', 'b2a'}); D_a and D_b judge each domain
(params['d'] = {'a', 'b'}). With the adversarial loss `adv` of `loss.adversarial` ('bce', the
paper, or 'lsgan', the CycleGAN code's default; any kind of `objectives.adversarial`):
  L_D = 1/2 adv_D(D_b(b), D_b(pool_b(G_ab(a)))) + (the same for D_a) [+ its penalties]
  L_G = adv_G(D_b(G_ab(a))) + adv_G(D_a(G_ba(b)))
        + l_a ||G_ba(G_ab(a)) - a||_1 + l_b ||G_ab(G_ba(b)) - b||_1             (cycle)
        + l_idt (l_b ||G_ab(b) - b||_1 + l_a ||G_ba(a) - a||_1)                 (identity)
D sees fakes through a history pool of `pool_size` images (TrainState.aux), as the CycleGAN
code does. The step runs D before G, so D's fakes come from the same G as in the code (which
updates G first), and G is scored by the just-updated D.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpr_gan.images import to_float
from jaxpr_gan.models import cyclegan
from jaxpr_gan.objectives import losses
from jaxpr_gan.objectives.base import Objective

Params = Any
DIRECTIONS = ('a2b', 'b2a')


@dataclasses.dataclass(frozen=True, kw_only=True)
class CycleGAN(Objective):
  """Two generators of one architecture and two discriminators of another; methods are pure."""

  generator: nn.Module
  discriminator: nn.Module
  adversarial: str = 'lsgan'
  lambda_a: float = 10.0
  lambda_b: float = 10.0
  lambda_identity: float = 0.5
  pool_size: int = 50

  family = 'two_domain'
  batch_keys = ('image_a', 'image_b')

  def init(self, rng: jax.Array, images: jnp.ndarray) -> dict[str, Params]:
    """Weights drawn as the CycleGAN code draws them: N(0, 0.02), zero biases."""
    x = to_float(images)
    k = jax.random.split(rng, 4)
    shapes = {
      'g': {
        'a2b': self.generator.init(k[0], x)['params'],
        'b2a': self.generator.init(k[1], x)['params'],
      },
      'd': {
        'a': self.discriminator.init(k[2], x)['params'],
        'b': self.discriminator.init(k[3], x)['params'],
      },
    }
    return cyclegan.official_init(shapes, jax.random.fold_in(rng, 1))

  def init_aux(self, image_size: int):
    """The history pools of generated images: 'a' holds fake A (for D_a), 'b' fake B."""
    return {k: cyclegan.init_image_pool(self.pool_size, image_size) for k in ('a', 'b')}

  def _generate(self, g_params: Params, direction: str, x: jnp.ndarray, rng=None) -> jnp.ndarray:
    """Dropout (when the generator has it) is on in training (`rng` given), off otherwise."""
    rngs = {} if rng is None else {'dropout': rng}
    return self.generator.apply(
      {'params': g_params[direction]}, x, deterministic=rng is None, rngs=rngs
    )

  def translate(self, g_params: Params, x: jnp.ndarray, direction: str = 'a2b') -> jnp.ndarray:
    """Float images in [-1, 1] of one domain -> the other ('a2b' or 'b2a')."""
    if direction not in DIRECTIONS:
      raise ValueError(f'direction must be one of {DIRECTIONS}, got {direction!r}')
    return self._generate(g_params, direction, x)

  def _judge(self, d_params: Params, domain: str, x: jnp.ndarray) -> jnp.ndarray:
    return self.discriminator.apply({'params': d_params[domain]}, x)

  def d_inputs(self, aux, g_params: Params, batch: dict[str, jnp.ndarray], rng):
    """Fakes of both directions, passed through the history pools."""
    k = jax.random.split(rng, 4)
    a, b = to_float(batch['image_a']), to_float(batch['image_b'])
    fake_b = jax.lax.stop_gradient(self._generate(g_params, 'a2b', a, k[0]))
    fake_a = jax.lax.stop_gradient(self._generate(g_params, 'b2a', b, k[1]))
    pooled_a, pool_a = cyclegan.image_pool_query(aux['a'], fake_a, k[2])
    pooled_b, pool_b = cyclegan.image_pool_query(aux['b'], fake_b, k[3])
    return dict(batch, fake_a=pooled_a, fake_b=pooled_b), {'a': pool_a, 'b': pool_b}

  def d_loss(
    self, d_params: Params, g_params: Params, batch: dict[str, jnp.ndarray], rng: jax.Array, step=0
  ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    del g_params  # the fakes come from d_inputs
    metrics, total = {}, 0.0
    for i, domain in enumerate(('a', 'b')):
      real, fake = to_float(batch[f'image_{domain}']), batch[f'fake_{domain}']
      real_out = self._judge(d_params, domain, real)
      fake_out = self._judge(d_params, domain, fake)
      critic = lambda x, dom=domain: self._judge(d_params, dom, x)
      adv, penalty, adv_metrics = self.adv.critic_loss(
        critic, real, fake, real_out, fake_out, jax.random.fold_in(rng, i), step
      )
      loss = 0.5 * adv
      total = total + loss if penalty is None else total + loss + penalty
      metrics.update({f'D/{k}_{domain}': v for k, v in adv_metrics.items()})
      metrics[f'D/{domain}'] = loss
      metrics[f'D/real_{domain}_score'] = jnp.mean(real_out)
      metrics[f'D/fake_{domain}_score'] = jnp.mean(fake_out)
    return total, dict(metrics, **{'D/loss': total})

  def g_loss(
    self, g_params: Params, d_params: Params, batch: dict[str, jnp.ndarray], rng: jax.Array, step=0
  ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    del step
    k = jax.random.split(rng, 6)
    a, b = to_float(batch['image_a']), to_float(batch['image_b'])
    fake_b = self._generate(g_params, 'a2b', a, k[0])
    fake_a = self._generate(g_params, 'b2a', b, k[1])
    adv_a2b = self.adv.generator_loss(self._judge(d_params, 'b', fake_b))
    adv_b2a = self.adv.generator_loss(self._judge(d_params, 'a', fake_a))
    cyc_a = losses.l1(self._generate(g_params, 'b2a', fake_b, k[2]), a)
    cyc_b = losses.l1(self._generate(g_params, 'a2b', fake_a, k[3]), b)
    total = adv_a2b + adv_b2a + self.lambda_a * cyc_a + self.lambda_b * cyc_b
    metrics = {'G/adv_a2b': adv_a2b, 'G/adv_b2a': adv_b2a, 'G/cycle_a': cyc_a, 'G/cycle_b': cyc_b}
    if self.lambda_identity > 0:
      idt_b = losses.l1(self._generate(g_params, 'a2b', b, k[4]), b)
      idt_a = losses.l1(self._generate(g_params, 'b2a', a, k[5]), a)
      total = total + self.lambda_identity * (self.lambda_b * idt_b + self.lambda_a * idt_a)
      metrics.update({'G/identity_a': idt_a, 'G/identity_b': idt_b})
    return total, dict(metrics, **{'G/loss': total})

  def sample_cells(self, g_params: Params, batch: dict[str, jnp.ndarray]) -> jnp.ndarray:
    """Per row: a, G_ab(a), G_ba(G_ab(a)), b, G_ba(b), G_ab(G_ba(b))."""
    a, b = to_float(batch['image_a']), to_float(batch['image_b'])
    ab = self.translate(g_params, a, 'a2b')
    ba = self.translate(g_params, b, 'b2a')
    cols = [a, ab, self.translate(g_params, ab, 'b2a'), b, ba, self.translate(g_params, ba, 'a2b')]
    return jnp.stack(cols, axis=1)
