"""Small pure loss functions. Objectives (jaxpr_gan/objectives) weight and compose them.

Every function reduces to a scalar float32 mean over the batch, so losses are comparable across
batch sizes and device counts.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax


def wgan_critic(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
  """Wasserstein critic loss: E[D(fake)] - E[D(real)]."""
  return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wgan_generator(fake_logits: jnp.ndarray) -> jnp.ndarray:
  """Wasserstein generator loss: -E[D(fake)]."""
  return -jnp.mean(fake_logits)


def gradient_penalty(
  critic: Callable[[jnp.ndarray], jnp.ndarray],
  real: jnp.ndarray,
  fake: jnp.ndarray,
  alpha: jnp.ndarray,
) -> jnp.ndarray:
  """WGAN-GP (Gulrajani et al.): E[(||grad_x D(x_hat)||_2 - 1)^2] on x_hat = a*real + (1-a)*fake.

  `critic` maps images to logits of any shape; as in StarGAN the gradient is that of their sum,
  per sample, and `alpha` has shape (B, 1, 1, 1).
  """
  x_hat = alpha * real + (1.0 - alpha) * jax.lax.stop_gradient(fake)
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=-1))
  return jnp.mean(jnp.square(norms - 1.0))


def softmax_cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Single-label classification (one expression per face), integer labels."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def sigmoid_cross_entropy(logits: jnp.ndarray, targets: jnp.ndarray) -> jnp.ndarray:
  """Multi-label classification (CelebA attributes): summed over labels, mean over the batch."""
  return jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(logits, targets), axis=-1))


def l1(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
  """Mean absolute error (reconstruction / cycle consistency)."""
  return jnp.mean(jnp.abs(x - y))


def squared_l2(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
  """||x - y||_2^2 per sample (summed over the last axis), mean over the batch (code regression)."""
  return jnp.mean(jnp.sum(jnp.square(x - y), axis=-1))


def mse(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
  """Mean squared error (scalar regression targets such as an intensity)."""
  return jnp.mean(jnp.square(x - y))


def binary_cross_entropy(logits: jnp.ndarray, target: float) -> jnp.ndarray:
  """BCE on logits towards the label `target` (1 real, 0 fake)."""
  logits = logits.astype(jnp.float32)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)))


def least_squares(logits: jnp.ndarray, target: float) -> jnp.ndarray:
  """Squared distance of the raw output to `target` (LSGAN, Mao et al. 2017)."""
  logits = logits.astype(jnp.float32)
  return jnp.mean(jnp.square(logits - target))


def hinge_critic(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
  """Hinge loss of the critic (Lim & Ye 2017): E[relu(1 - D(real))] + E[relu(1 + D(fake))]."""
  return jnp.mean(jax.nn.relu(1.0 - real_logits.astype(jnp.float32))) + jnp.mean(
    jax.nn.relu(1.0 + fake_logits.astype(jnp.float32))
  )


def logistic_critic(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
  """The logistic critic loss as StyleGAN2 writes it:
  E[softplus(-D(real))] + E[softplus(D(fake))]."""
  return jnp.mean(jax.nn.softplus(-real_logits.astype(jnp.float32))) + jnp.mean(
    jax.nn.softplus(fake_logits.astype(jnp.float32))
  )


def non_saturating_generator(fake_logits: jnp.ndarray) -> jnp.ndarray:
  """G's non-saturating logistic loss (Goodfellow et al. 2014): E[softplus(-D(fake))]."""
  return jnp.mean(jax.nn.softplus(-fake_logits.astype(jnp.float32)))


def r1_penalty(critic: Callable[[jnp.ndarray], jnp.ndarray], real: jnp.ndarray) -> jnp.ndarray:
  """Zero-centred gradient penalty on real data (Mescheder et al. 2018), as StarGAN v2 and
  2CET-GAN write it: 0.5 * E[||grad_x sum D(x)||^2]."""
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(real)
  return 0.5 * jnp.mean(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=-1))


def diversity(
  fake_1: jnp.ndarray, fake_2: jnp.ndarray, weights: jnp.ndarray | None = None
) -> jnp.ndarray:
  """Diversity-sensitive term E[w * ||G(x, c1) - G(x, c2)||_1] (per-sample mean absolute
  difference, optionally weighted per sample); objectives subtract it to push outputs apart."""
  per_sample = jnp.mean(jnp.abs(fake_1 - fake_2).reshape(fake_1.shape[0], -1), axis=-1)
  if weights is not None:
    per_sample = per_sample * weights
  return jnp.mean(per_sample)


def ramp(step: jnp.ndarray, start: float, end: float, num_steps: int) -> jnp.ndarray:
  """A loss weight moving linearly from `start` at step 0 to `end` at `num_steps`, then held
  (2CET-GAN's dynamic weights); `num_steps` 0 means `end` throughout."""
  if num_steps <= 0:
    return jnp.asarray(end, jnp.float32)
  frac = jnp.clip(jnp.asarray(step, jnp.float32) / num_steps, 0.0, 1.0)
  return jnp.asarray(start + (end - start) * frac, jnp.float32)


def contextual(
  x_features: jnp.ndarray, y_features: jnp.ndarray, bandwidth: float = 0.5, eps: float = 1e-5
) -> jnp.ndarray:
  """Contextual loss (Mechrez et al. 2018), -log CX(X, Y), mean over the batch.

  X and Y are sets of feature vectors, (B, H, W, C) maps whose positions are forgotten: for each
  y_j the best-matching x_i counts, so features may move (a smile shifts the mouth) without
  loss. Cosine distances of features centred on Y's mean, d_ij, are made relative to x_i's
  nearest y (d_ij / (min_k d_ik + eps)), turned into affinities exp((1 - d~_ij) / bandwidth)
  normalised over j, and CX(X, Y) = mean_j max_i CX_ij, which is 1 when every y_j has its own
  x_i and falls towards 0 as the sets part.
  """
  b, c = x_features.shape[0], x_features.shape[-1]
  x = x_features.reshape(b, -1, c).astype(jnp.float32)
  y = y_features.reshape(b, -1, c).astype(jnp.float32)
  mu = jnp.mean(y, axis=1, keepdims=True)
  normalise = lambda f: f / (jnp.linalg.norm(f, axis=-1, keepdims=True) + eps)
  x, y = normalise(x - mu), normalise(y - mu)
  distance = 1.0 - jnp.einsum('bic,bjc->bij', x, y)
  relative = distance / (jnp.min(distance, axis=2, keepdims=True) + eps)
  cx = jax.nn.softmax((1.0 - relative) / bandwidth, axis=2)
  similarity = jnp.mean(jnp.max(cx, axis=1), axis=1)
  return jnp.mean(-jnp.log(similarity + eps))
