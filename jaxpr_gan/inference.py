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
"""
import dataclasses
import functools
import json
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxpr_gan import checkpointing
from jaxpr_gan import evaluation
from jaxpr_gan import objectives
from jaxpr_gan import training
from jaxpr_gan.objectives import intensity

NORMALISATION = 'RGB, x = uint8 / 127.5 - 1 in [-1, 1]; outputs the same; mask in [0, 1]'


def _attention_mask(intermediates, size: int, batch: int) -> jnp.ndarray:
  """Mean of every sown 'attention_map' (B, h, w, 1), each resized (nearest) to size x size."""
  maps = [m for path, m in jax.tree_util.tree_flatten_with_path(intermediates)[0]
          if any(getattr(k, 'key', None) == 'attention_map' for k in path)]
  if not maps:
    return jnp.zeros((batch, size, size), jnp.float32)
  resized = [jax.image.resize(m.astype(jnp.float32).mean(-1), (batch, size, size), 'nearest')
             for m in maps]
  return sum(resized) / len(resized)


def translate_fn(objective) -> Callable:
  """The family's pure `(params, x, target, rho, reference) -> (image, mask)`."""
  if objective.family == 'two_domain':
    def two_domain(params, x, target, rho, reference):
      del rho, reference
      to_b = (target == 1)[:, None, None, None]
      image = jnp.where(to_b, objective.translate(params, x, 'a2b'),
                        objective.translate(params, x, 'b2a'))
      return image, jnp.zeros(x.shape[:3], jnp.float32)
    return two_domain
  if objective.family == 'reference':
    def reference_fn(params, x, target, rho, reference):
      del target
      return (objective.transfer(params, x, reference, rho),
              jnp.zeros(x.shape[:3], jnp.float32))
    return reference_fn

  def conditional(params, x, target, rho, reference):
    del reference
    image, state = objective.generator.apply(
        {'params': params}, x, objective.condition(target, rho), mutable=['intermediates'])
    return image, _attention_mask(state.get('intermediates', {}), x.shape[1], x.shape[0])
  return conditional


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

  def target_index(self, name: str) -> int:
    """A class (or domain) name -> its index; an unknown name lists the known ones."""
    if name not in self.class_names:
      raise ValueError(f'unknown target {name!r}; this {self.model} run knows '
                       f'{", ".join(self.class_names)}')
    return self.class_names.index(name)

  def __call__(self, images: np.ndarray, target: int = 0, rho: float = 1.0,
               reference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (B, H, W, 3) -> (uint8 images, float masks (B, H, W)), one target for all."""
    b = images.shape[0]
    x = images.astype(np.float32) / 127.5 - 1.0
    ref = x if reference is None else np.broadcast_to(
        reference.astype(np.float32) / 127.5 - 1.0, x.shape)
    image, mask = self.translate(x, np.full((b,), target, np.int32),
                                 np.full((b,), rho, np.float32), np.ascontiguousarray(ref))
    image = np.clip(np.rint((np.asarray(image) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return image, np.asarray(mask)


def load_run(workdir: str, step: int | None = None):
  """-> (config, objective, generator params, class names, step) of a run directory; the
  config is the one saved with the checkpoint, so no --config is needed."""
  if not os.path.isdir(workdir):
    parent = os.path.dirname(os.path.abspath(workdir))
    runs = sorted(d for d in os.listdir(parent)
                  if os.path.isdir(os.path.join(parent, d, 'checkpoints'))) if os.path.isdir(
                      parent) else []
    raise FileNotFoundError(f'no run directory {workdir!r}; runs beside it: '
                            f'{", ".join(runs) or "none"}')
  ckpt = checkpointing.Checkpointer(workdir, max_to_keep=None, async_save=False)
  steps = ckpt.all_steps()
  if not steps:
    raise FileNotFoundError(f'{workdir} holds no checkpoint (checkpoints/ is empty or missing)')
  if step is None:
    step = max(steps)
  elif step not in steps:
    ckpt.close()
    raise ValueError(f'no checkpoint for step {step} in {workdir}; saved steps: {steps}')
  meta = ckpt.meta(step)
  ckpt.close()
  config = ml_collections.ConfigDict(meta['config'])
  objective, g_params, class_names, step = evaluation.restore_generator(config, workdir, step)
  return config, objective, g_params, class_names, step


def describe(objective, g_params, config) -> dict:
  """What a generator offers beyond the image: an intensity input, attention masks."""
  has_mask = False
  if objective.family == 'conditional':  # shapes only; nothing is computed
    size = config.data.image_size
    x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    c = jax.ShapeDtypeStruct((1, objective.num_classes), jnp.float32)
    _, state = jax.eval_shape(lambda p, x, c: objective.generator.apply(
        {'params': p}, x, c, mutable=['intermediates']), g_params, x, c)
    has_mask = bool(jax.tree.leaves(state.get('intermediates', {})))
  return {'has_intensity': isinstance(objective, intensity.IntensityGAN), 'has_mask': has_mask}


def from_run(workdir: str, step: int | None = None) -> Translator:
  """The run's generator (EMA weights when it keeps them), jitted."""
  config, objective, g_params, class_names, step = load_run(workdir, step)
  fn = jax.jit(functools.partial(translate_fn(objective), g_params))
  return Translator(fn, list(class_names), int(config.data.image_size), objective.family,
                    config.model, **describe(objective, g_params, config),
                    info={'workdir': os.path.abspath(workdir), 'step': int(step)})


def write_run(config: ml_collections.ConfigDict, class_names, workdir: str,
              set_params: Callable | None = None, step: int = 0,
              extra_meta: dict | None = None) -> None:
  """A run directory with one checkpoint: a fresh initialisation, its params passed through
  `set_params` (e.g. replaced by converted weights); the EMA copy of G, if the config keeps one,
  equals the final params['g']. For imported weights and tests."""
  ckpt = checkpointing.Checkpointer(workdir, max_to_keep=None, async_save=False)
  if ckpt.all_steps():
    raise FileExistsError(f'{workdir} already holds checkpoints {ckpt.all_steps()}; '
                          'use a new directory.')
  objective = objectives.build(config, len(class_names))
  state = jax.jit(functools.partial(training.init_state, objective, config))()
  if set_params is not None:
    state = state.replace(params=set_params(jax.device_get(state.params)))
  if jax.tree.leaves(state.ema_params):
    state = state.replace(ema_params=state.params['g'])
  state = state.replace(step=jnp.asarray(step, jnp.int32))
  meta = {'class_names': list(class_names), 'config': config.to_dict(), **(extra_meta or {})}
  ckpt.save(step, state, None, meta)
  ckpt.close()
  with open(os.path.join(workdir, 'run.json'), 'w') as f:
    json.dump(meta, f, indent=1)
