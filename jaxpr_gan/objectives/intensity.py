"""MMA-GAN's objective (Liu et al., eq. 1-8): the conditional family with a continuous intensity.

The generator is conditioned on z = c * rho (one-hot target class times an intensity rho in
[0, 1], drawn uniformly per sample in training), so rho = 0 gives the same code for every class.
D additionally regresses the code (D_cor) and the intensity (rho-hat) of generated faces:

  L_D =  L_adv + l_cls L_cls^real + l_infoD (L_info + L_rho)                           (eq. 8)
  L_G =  L_adv + l_cls L_cls^fake + l_rec L_rec + l_infoG L_info + l_rho L_rho         (eq. 7)
  L_rec  = ||x - G(G(x, z), D_cor(x))||_1                                              (eq. 2)
  L_info = ||D_cor(G(x, z)) - z||^2,  L_rho = (rho-hat(G(x, z)) - rho)^2               (eq. 5, 6)

Eq. 8 lists L_info alone; the rho-hat head is trained with it (same weight), as nothing else in
D's objective would fit it. `rec_code='label'` reconstructs with the source one-hot label instead
of D_cor(x) (StarGAN's choice), an option for data whose intensities are all 1.
"""

import dataclasses

import jax
import jax.numpy as jnp

from jaxpr_gan.objectives import conditional
from jaxpr_gan.objectives import losses

REC_CODES = ('d_cor', 'label')


@dataclasses.dataclass(frozen=True, kw_only=True)
class IntensityGAN(conditional.ConditionalGAN):
  """ConditionalGAN with the code z = c * rho and D's code and intensity heads."""

  lambda_info_g: float = 1.0
  lambda_info_d: float = 1.0
  lambda_rho: float = 1.0
  rec_code: str = 'd_cor'

  def __post_init__(self):
    if self.rec_code not in REC_CODES:
      raise ValueError(f'loss.rec_code is {self.rec_code!r}; use one of {REC_CODES}.')

  def condition(self, target: jnp.ndarray, rho: jnp.ndarray | None = None) -> jnp.ndarray:
    """z = one_hot(target) * rho, rho of shape (B,) or a scalar; rho defaults to 1."""
    c = jax.nn.one_hot(target, self.num_classes)
    if rho is None:
      return c
    return c * jnp.broadcast_to(jnp.asarray(rho, jnp.float32), target.shape)[:, None]

  def _targets(self, rng: jax.Array, labels: jnp.ndarray):
    perm_rng, rho_rng = jax.random.split(rng)
    rho = jax.random.uniform(rho_rng, labels.shape)
    return jax.random.permutation(perm_rng, labels), rho

  def _reconstruction_condition(self, d_params, x, labels):
    if self.rec_code == 'label':
      return self.condition(labels)
    return self._discriminate(d_params, x)[2]  # D_cor(x); D is not updated by the G step

  def _code_terms(self, fake_out, targets, rho, for_generator: bool):
    _, _, cor, rho_hat = fake_out
    info = losses.squared_l2(cor, self.condition(targets, rho))
    rho_loss = losses.mse(rho_hat, rho)
    if for_generator:
      return (
        self.lambda_info_g * info + self.lambda_rho * rho_loss,
        {'G/info': info, 'G/rho': rho_loss},
      )
    return self.lambda_info_d * (info + rho_loss), {'D/info': info, 'D/rho': rho_loss}
