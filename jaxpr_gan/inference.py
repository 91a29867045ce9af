"""A trained generator as one function of arrays, for every model family.

  translate(params, x, target, rho, reference) -> (image, mask)

x, reference: float32 (B, H, W, 3) RGB in [-1, 1] (uint8 / 127.5 - 1); target: int32 (B,);
rho: float32 (B,); image: like x; mask: float32 (B, H, W) in [0, 1]. Per family:
  conditional  image = G(x, target class); rho is MMA-GAN's intensity (ignored by the others);
               mask = the mean of the generator's attention maps (SARGAN's SARB, MMA-GAN's
               spatial attention), resized to the image, or zeros when it has none.
  two_domain   target is the output domain: 1 = A -> B (G_a2b), 0 = B -> A.
  reference    (2CET-GAN) the reference face's expression code, times rho, on x.
One signature for all makes `edit` and the exported file independent of the family.
`Translator` wraps it with the run's class names and size, from a run or an exported file.
A run of a multi-attribute (CelebA) model also gives, outside that signature (the exported file
keeps it and so only one-hot targets), `labels_fn`'s translation with an explicit float label
vector and its discriminator's classification logits (`jaxpr_gan.attributes`).
The masks are what the generator declares as such (`nn.attention.sow_mask`).
"""

from collections.abc import Callable
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxpr_gan import attributes
from jaxpr_gan import errors
from jaxpr_gan import images
from jaxpr_gan import storage
from jaxpr_gan.evaluation import restore as restore_lib
from jaxpr_gan.nn import attention
from jaxpr_gan.nn import conv
from jaxpr_gan.objectives import intensity


def _attention_mask(masks, size: int, batch: int) -> jnp.ndarray:
  """Mean of every sown mask (B, h, w, 1), each resized (nearest) to size x size."""
  maps = jax.tree.leaves(masks)
  if not maps:
    return jnp.zeros((batch, size, size), jnp.float32)
  resized = [
    jax.image.resize(m.astype(jnp.float32).mean(-1), (batch, size, size), 'nearest') for m in maps
  ]
  return sum(resized) / len(resized)


def translate_fn(objective) -> Callable:
  """The family's pure `(params, x, target, rho, reference) -> (image, mask)`."""
  if objective.family == 'two_domain':

    def two_domain(params, x, target, rho, reference):
      del rho, reference
      to_b = (target == 1)[:, None, None, None]
      image = jnp.where(
        to_b, objective.translate(params, x, 'a2b'), objective.translate(params, x, 'b2a')
      )
      return image, jnp.zeros(x.shape[:3], jnp.float32)

    return two_domain
  if objective.family == 'reference':

    def reference_fn(params, x, target, rho, reference):
      del target
      return (objective.transfer(params, x, reference, rho), jnp.zeros(x.shape[:3], jnp.float32))

    return reference_fn

  labelled = labels_fn(objective)

  def conditional(params, x, target, rho, reference):
    del reference
    return labelled(params, x, objective.condition(target, rho))

  return conditional


def labels_fn(objective) -> Callable:
  """Conditional family: `(params, x, c) -> (image, mask)` for explicit float label vectors c
  (B, num_classes); translate_fn's conditional case is its one-hot (or intensity) c."""

  def labelled(params, x, c):
    image, state = objective.generator.apply({'params': params}, x, c, mutable=[attention.MASKS])
    return image, _attention_mask(state.get(attention.MASKS, {}), x.shape[1], x.shape[0])

  return labelled


@dataclasses.dataclass(frozen=True)
class Translator:
  """A generator with what a user needs to call it; from `from_run` or `export.load`."""

  translate: Callable  # (x, target, rho, reference) -> (image, mask), arrays as above
  class_names: list[str]
  image_size: int
  family: str
  model: str
  has_intensity: bool = False
  has_mask: bool = False
  info: dict = dataclasses.field(default_factory=dict)
  multi_attribute: bool = False  # classes are attributes that hold together (attributes.py)
  translate_labels: Callable | None = None  # (x, c (B, num_classes)) -> (image, mask); runs only
  classify: Callable | None = None  # x -> D's classification logits (B, num_classes); runs only

  def target_index(self, name: str) -> int:
    """A class (or domain) name -> its index; an unknown name lists the known ones."""
    if name not in self.class_names:
      raise errors.BadInput(
        f'unknown target {name!r}; this {self.model} run knows {", ".join(self.class_names)}'
      )
    return self.class_names.index(name)

  def __call__(
    self, faces: np.ndarray, target: int = 0, rho: float = 1.0, reference: np.ndarray | None = None
  ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (B, H, W, 3) -> (uint8 images, float masks (B, H, W)), one target for all."""
    b = faces.shape[0]
    x = images.to_float(faces)
    ref = x if reference is None else np.broadcast_to(images.to_float(reference), x.shape)
    image, mask = self.translate(
      x, np.full((b,), target, np.int32), np.full((b,), rho, np.float32), np.ascontiguousarray(ref)
    )
    return images.to_uint8(image), np.asarray(mask)

  def with_labels(self, faces: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (B, H, W, 3) and float label vectors (B, num_classes) -> (uint8 images, masks)."""
    image, mask = self.translate_labels(images.to_float(faces), np.asarray(labels, np.float32))
    return images.to_uint8(image), np.asarray(mask)

  def source_logits(self, faces: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) -> the discriminator's classification logits (B, num_classes)."""
    return np.asarray(self.classify(images.to_float(faces)))


def describe(objective, g_params, config) -> dict:
  """What a generator offers beyond the image: an intensity input, attention masks."""
  has_mask = False
  if objective.family == 'conditional':  # shapes only; nothing is computed
    size = config.data.image_size
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    c = jax.ShapeDtypeStruct((1, objective.num_classes), jnp.float32)
    _, state = jax.eval_shape(
      lambda p, x, c: objective.generator.apply({'params': p}, x, c, mutable=[attention.MASKS]),
      g_params,
      x,
      c,
    )
    has_mask = bool(jax.tree.leaves(state.get(attention.MASKS, {})))
  return {'has_intensity': isinstance(objective, intensity.IntensityGAN), 'has_mask': has_mask}


def from_run(workdir: str, step: int | None = None) -> Translator:
  """The run's generator (EMA weights when it keeps them), jitted; its convolutions as
  `config.conv_impl` chooses for the default backend."""
  run = restore_lib.restore(workdir, step)
  fn = functools.partial(translate_fn(run.objective), run.g_params)
  fn = jax.jit(conv.traced_with(fn, run.config.conv_impl))
  extra = {}
  if run.objective.family == 'conditional' and attributes.is_multi_attribute(
    run.class_names, run.config.data.source
  ):
    labelled = functools.partial(labels_fn(run.objective), run.g_params)
    d = run.objective.discriminator
    classify = lambda x: d.apply({'params': run.d_params}, x)[1]
    # An import of G alone has an untrained D: its classifier must not name the attributes.
    d_known = run.imported is None or 'd' in run.imported.get('converted', ())
    extra = {
      'multi_attribute': True,
      'translate_labels': jax.jit(conv.traced_with(labelled, run.config.conv_impl)),
      'classify': jax.jit(conv.traced_with(classify, run.config.conv_impl)) if d_known else None,
    }
  return Translator(
    fn,
    run.class_names,
    int(run.config.data.image_size),
    run.objective.family,
    run.config.model,
    **describe(run.objective, run.g_params, run.config),
    info={'workdir': storage.absolute(workdir), 'step': run.step},
    **extra,
  )
