"""The expression judge: a classifier trained on a run's own training images, which eval.py uses
to score whether generated faces show the requested expression (the StarGAN paper's protocol).

  python -m jaxpr_gan.tools.judge --config configs/stargan.py:quick --workdir workdirs/judge_quick
  python eval.py --workdir workdirs/stargan_quick --config.eval.judge_dir=workdirs/judge_quick

The network is ResNet-18-shaped (four stages of two basic blocks, widths w, 2w, 4w, 8w, strides
1, 2, 2, 2, global average pooling), with a 3x3 stem for small faces and GroupNorm instead of
BatchNorm, so training and inference compute the same function. It reads the config's data
through the same grain pipeline as training (random flips included); two-group data (domains,
neutral/emotional) is read as one labelled set. The test split's accuracy is measured at the end
and saved with the weights.
"""

import functools
import json
import os
import time

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from input_pipeline import groups
from input_pipeline import pipeline
from jaxpr_gan import errors
from jaxpr_gan import files
from jaxpr_gan.evaluation import arrays
from jaxpr_gan.images import to_float

PARAMS_FILE, META_FILE = 'judge.msgpack', 'judge.json'


class BasicBlock(nn.Module):
  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    norm = lambda: nn.GroupNorm(num_groups=min(8, self.features))
    h = nn.Conv(self.features, (3, 3), self.stride, padding=1, use_bias=False)(x)
    h = nn.relu(norm()(h))
    h = norm()(nn.Conv(self.features, (3, 3), padding=1, use_bias=False)(h))
    if self.stride != 1 or x.shape[-1] != self.features:
      x = norm()(nn.Conv(self.features, (1, 1), self.stride, use_bias=False)(x))
    return nn.relu(x + h)


class Judge(nn.Module):
  """uint8 images (B, H, W, 3) -> class logits."""

  num_classes: int
  width: int = 16

  @nn.compact
  def __call__(self, images):
    x = to_float(images)
    x = nn.relu(
      nn.GroupNorm(num_groups=min(8, self.width))(
        nn.Conv(self.width, (3, 3), padding=1, use_bias=False)(x)
      )
    )
    for stage, stride in enumerate((1, 2, 2, 2)):
      for block in range(2):
        x = BasicBlock(self.width * 2**stage, stride if block == 0 else 1)(x)
    return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)))


class _Labelled:
  """Both groups of a two-group source as one labelled source."""

  def __init__(self, source: groups.TwoGroupSource):
    self._groups = source.groups
    self.class_names = source.class_names

  def __len__(self):
    return sum(len(g) for g in self._groups)

  def __getitem__(self, index):
    i = int(index)
    first = len(self._groups[0])
    return self._groups[0][i] if i < first else self._groups[1][i - first]


def labelled_source(data: ml_collections.ConfigDict, split: str):
  source = pipeline.make_source(data, split)
  return _Labelled(source) if isinstance(source, groups.TwoGroupSource) else source


class Loaded:
  """A trained judge: `predict(uint8 images) -> classes`, its class names and metadata."""

  def __init__(self, params, meta: dict):
    self.meta = meta
    self.class_names = meta['class_names']
    model = Judge(len(self.class_names), meta['width'])
    self._logits = jax.jit(lambda p, x: model.apply({'params': p}, x))
    self._params = params

  def predict(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    logits = arrays.in_batches(lambda x: self._logits(self._params, x), [images], batch_size)[0]
    return np.argmax(logits, axis=-1)


def load(judge_dir: str) -> Loaded:
  meta_path = os.path.join(judge_dir, META_FILE)
  if not os.path.isfile(meta_path):
    raise errors.NotFound(
      f'no judge in {judge_dir!r} ({META_FILE} missing); train one with '
      'python -m jaxpr_gan.tools.judge --config ... --workdir ' + judge_dir
    )
  with open(meta_path) as f:
    meta = json.load(f)
  model = Judge(len(meta['class_names']), meta['width'])
  size = meta['image_size']
  template = jax.eval_shape(
    model.init, jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3), jnp.uint8)
  )['params']
  with open(os.path.join(judge_dir, PARAMS_FILE), 'rb') as f:
    params = flax.serialization.from_bytes(
      jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template), f.read()
    )
  return Loaded(params, meta)


def _make_step(model: Judge, tx: optax.GradientTransformation):
  """The jitted training step: (params, opt_state, images, labels) -> (..., loss, accuracy)."""

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, images, labels):
    def loss_fn(p):
      logits = model.apply({'params': p}, images)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return loss, jnp.mean(jnp.argmax(logits, -1) == labels)

    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, acc

  return step


def _save(workdir: str, params, meta: dict) -> None:
  """Writes the judge's weights and meta to `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  files.write_bytes(
    os.path.join(workdir, PARAMS_FILE), flax.serialization.to_bytes(jax.device_get(params))
  )
  files.write_json(os.path.join(workdir, META_FILE), meta)  # last: the judge is complete


def train(
  config: ml_collections.ConfigDict,
  workdir: str,
  steps: int = 800,
  batch_size: int = 64,
  width: int = 16,
  learning_rate: float = 1e-3,
) -> dict:
  """Trains the judge on `config.data`'s training split; writes it to `workdir`; -> its meta."""
  source = labelled_source(config.data, 'train')
  class_names = list(source.class_names)
  judge_config = ml_collections.ConfigDict(dict(batch_size=batch_size, data=config.data))
  data_iter = iter(pipeline.create_train_dataset(judge_config, source))
  size = config.data.image_size
  model = Judge(len(class_names), width)
  params = model.init(jax.random.PRNGKey(config.seed), jnp.zeros((1, size, size, 3), jnp.uint8))[
    'params'
  ]
  tx = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
  opt_state = tx.init(params)
  step = _make_step(model, tx)
  start, sums, count = time.time(), np.zeros(2), 0
  for i in range(steps):
    batch = next(data_iter)
    params, opt_state, loss, acc = step(params, opt_state, batch['image'], batch['label'])
    sums, count = sums + jax.device_get((loss, acc)), count + 1
    if (i + 1) % 100 == 0 or i + 1 == steps:
      logging.info(
        'judge step %d/%d: loss %.4f, train accuracy %.3f (%.0f s)',
        i + 1,
        steps,
        sums[0] / count,
        sums[1] / count,
        time.time() - start,
      )
      sums, count = np.zeros(2), 0
  images, labels = arrays.decode(labelled_source(config.data, 'test'), 10**9, size)
  loaded = Loaded(params, {'class_names': class_names, 'width': width, 'image_size': size})
  accuracy = float(np.mean(loaded.predict(images) == labels))
  meta = {
    'class_names': class_names,
    'width': width,
    'image_size': size,
    'steps': steps,
    'batch_size': batch_size,
    'test_accuracy': accuracy,
    'num_test_images': len(images),
    'data': config.data.to_dict(),
  }
  _save(workdir, params, meta)
  logging.info(
    'Judge: test accuracy %.4f on %d images; saved in %s.', accuracy, len(images), workdir
  )
  return meta
