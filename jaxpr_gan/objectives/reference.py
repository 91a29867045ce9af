"""2CET-GAN's objective (Hu et al., eq. 1-8): expression transfer learned without emotion labels.

Batches hold a neutral face n ('image_a') and an emotional face e ('image_b'), unpaired. An
encoder E maps a face to a d-dim expression code; G(x, c) applies a code (the zero code makes a
neutral face); one discriminator has a neutral head (0) and an emotional head (1). Both cycles
run in every iteration:
  N -> E -> N: e~ = G(n, c), c ~ U(lo, hi)^d
     adv_e (eq. 1), cyc_n = ||n - G(e~, 0)||_1 (eq. 2), code = ||c - E(e~)||_1 (eq. 3),
     ds = ||G(n, c) - G(n, c2)||_1 (eq. 4; weighted per sample by |c - c2| as in the code)
  E -> N -> E: n~ = G(e, 0)
     adv_n (eq. 6), cyc_e = ||e - G(n~, E(e))||_1 (eq. 7)
  L_G,E = l_adv_e adv_e + l_cyc_n cyc_n + l_code(t) code - l_ds(t) ds + l_adv_n adv_n
          + l_cyc_e(t) cyc_e                                                   (eq. 5 + eq. 8)
  L_D = the adversarial loss of both heads on real and fake faces (BCE with R1 on the real
        faces, weight l_r1, as the official code; `loss.adversarial`)
The weights marked (t) move linearly with the step (losses.ramp), as the paper's dynamic weights.
params['g'] = {'generator', 'encoder'}: E is trained with G, by G's optimiser.
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
NEUTRAL, EMOTIONAL = 0, 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class TwoCycleGAN(Objective):
  """Encoder, generator and two-headed discriminator with 2CET-GAN's weights; pure methods."""

  generator: nn.Module
  encoder: nn.Module
  discriminator: nn.Module
  adversarial: str = 'bce'
  lambda_r1: float = 1.0
  code_dim: int = 32
  code_range: tuple[float, float] = (-0.5, 0.5)
  lambda_adv_e: float = 1.0
  lambda_adv_n: float = 1.0
  lambda_cyc_n: float = 1.0
  code_weight: tuple[float, float, int] = (0.0, 1.0, 5000)  # (start, end, steps): losses.ramp
  ds_weight: tuple[float, float, int] = (1.0, 0.0, 10000)
  cyc_e_weight: tuple[float, float, int] = (1.0, 1.5, 10000)
  proportional_ds: bool = True

  family = 'reference'
  batch_keys = ('image_a', 'image_b')

  def init(self, rng: jax.Array, images: jnp.ndarray) -> dict[str, Params]:
    x = to_float(images)
    k = jax.random.split(rng, 3)
    code = jnp.zeros((x.shape[0], self.code_dim), jnp.float32)
    group = jnp.zeros((x.shape[0],), jnp.int32)
    return {
      'g': {
        'generator': self.generator.init(k[0], x, code)['params'],
        'encoder': self.encoder.init(k[1], x)['params'],
      },
      'd': self.discriminator.init(k[2], x, group)['params'],
    }

  def encode(self, g_params: Params, x: jnp.ndarray) -> jnp.ndarray:
    """Expression codes of float faces in [-1, 1]."""
    return self.encoder.apply({'params': g_params['encoder']}, x)

  def generate(self, g_params: Params, x: jnp.ndarray, code: jnp.ndarray) -> jnp.ndarray:
    """Applies expression codes to faces; the zero code asks for the neutral face."""
    return self.generator.apply({'params': g_params['generator']}, x, code)

  def neutralize(self, g_params: Params, x: jnp.ndarray) -> jnp.ndarray:
    return self.generate(g_params, x, jnp.zeros((x.shape[0], self.code_dim), jnp.float32))

  def transfer(
    self,
    g_params: Params,
    target: jnp.ndarray,
    reference: jnp.ndarray,
    scale: float | jnp.ndarray = 1.0,
  ) -> jnp.ndarray:
    """The reference's expression (code scaled by `scale`) on a neutral target face."""
    code = self.encode(g_params, reference) * jnp.reshape(jnp.asarray(scale, jnp.float32), (-1, 1))
    return self.generate(g_params, target, code)

  def random_code(self, rng: jax.Array, n: int) -> jnp.ndarray:
    lo, hi = self.code_range
    return jax.random.uniform(rng, (n, self.code_dim), minval=lo, maxval=hi)

  def _judge(self, d_params: Params, x: jnp.ndarray, group: int) -> jnp.ndarray:
    return self.discriminator.apply(
      {'params': d_params}, x, jnp.full((x.shape[0],), group, jnp.int32)
    )

  def d_loss(
    self, d_params: Params, g_params: Params, batch: dict[str, jnp.ndarray], rng: jax.Array, step=0
  ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    n, e = to_float(batch['image_a']), to_float(batch['image_b'])
    fake_e = jax.lax.stop_gradient(self.generate(g_params, n, self.random_code(rng, n.shape[0])))
    fake_n = jax.lax.stop_gradient(self.neutralize(g_params, e))
    metrics, total = {}, 0.0
    for name, group, real, fake in (('e', EMOTIONAL, e, fake_e), ('n', NEUTRAL, n, fake_n)):
      real_out = self._judge(d_params, real, group)
      fake_out = self._judge(d_params, fake, group)
      critic = lambda x, g=group: self._judge(d_params, x, g)
      adv, penalty, adv_metrics = self.adv.critic_loss(
        critic, real, fake, real_out, fake_out, jax.random.fold_in(rng, 1 + group), step
      )
      total = total + adv if penalty is None else total + adv + penalty
      metrics.update({f'D/{k}_{name}': v for k, v in adv_metrics.items()})
      metrics.update(
        {
          f'D/adv_{name}': adv,
          f'D/real_{name}_acc': jnp.mean(real_out > 0),
          f'D/fake_{name}_acc': jnp.mean(fake_out < 0),
        }
      )
    return total, dict(metrics, **{'D/loss': total})

  def g_loss(
    self, g_params: Params, d_params: Params, batch: dict[str, jnp.ndarray], rng: jax.Array, step=0
  ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    n, e = to_float(batch['image_a']), to_float(batch['image_b'])
    k1, k2 = jax.random.split(rng)
    # N -> E -> N
    c1, c2 = self.random_code(k1, n.shape[0]), self.random_code(k2, n.shape[0])
    fake_e = self.generate(g_params, n, c1)
    adv_e = self.adv.generator_loss(self._judge(d_params, fake_e, EMOTIONAL))
    cyc_n = losses.l1(self.neutralize(g_params, fake_e), n)
    code = jnp.mean(jnp.abs(self.encode(g_params, fake_e) - c1))
    fake_e2 = jax.lax.stop_gradient(self.generate(g_params, n, c2))
    weights = None
    if self.proportional_ds:  # 1 on average: |c1 - c2| has mean (hi - lo) / 3 per entry
      lo, hi = self.code_range
      weights = jnp.mean(jnp.abs(c2 - c1), axis=-1) * 3.0 / (hi - lo)
    ds = losses.diversity(fake_e, fake_e2, weights)
    # E -> N -> E
    fake_n = self.neutralize(g_params, e)
    adv_n = self.adv.generator_loss(self._judge(d_params, fake_n, NEUTRAL))
    cyc_e = losses.l1(self.generate(g_params, fake_n, self.encode(g_params, e)), e)
    w_code, w_ds, w_cyc_e = (
      losses.ramp(step, *w) for w in (self.code_weight, self.ds_weight, self.cyc_e_weight)
    )
    total = (
      self.lambda_adv_e * adv_e
      + self.lambda_cyc_n * cyc_n
      + w_code * code
      - w_ds * ds
      + self.lambda_adv_n * adv_n
      + w_cyc_e * cyc_e
    )
    return total, {
      'G/loss': total,
      'G/adv_e': adv_e,
      'G/adv_n': adv_n,
      'G/cycle_n': cyc_n,
      'G/cycle_e': cyc_e,
      'G/code': code,
      'G/diversity': ds,
      'G/lambda_code': w_code,
      'G/lambda_ds': w_ds,
      'G/lambda_cyc_e': w_cyc_e,
    }

  def sample_cells(self, g_params: Params, batch: dict[str, jnp.ndarray]) -> jnp.ndarray:
    """Per row: neutral target, emotional reference, the reference neutralised, the transfer."""
    n, e = to_float(batch['image_a']), to_float(batch['image_b'])
    cols = [n, e, self.neutralize(g_params, e), self.transfer(g_params, n, e)]
    return jnp.stack(cols, axis=1)
