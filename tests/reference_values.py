"""Fingerprints of every model's losses, gradients, one train step and its translation.

Recorded before a restructuring and compared after it (tests/test_reference_values.py): the same
configs on the same kind of CPU must give the same bits. Each gradient leaf is kept as the
SHA-256 of its bytes and its norm, each loss and metric as the hex of its float32.

  python -m tests.reference_values --tier tiny  --out tests/data/reference_tiny.json
  python -m tests.reference_values --tier paper --out tests/data/reference_paper.json
(paper: every model at its paper size, batch 4; about 10 minutes on a 2-core CPU)
"""

import argparse
import functools
import hashlib
import importlib
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
# isort: off
from tests import conftest  # noqa: E402  (its JAX settings, those of the recording, come first)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxpr_gan import images  # noqa: E402
from jaxpr_gan import inference  # noqa: E402
from jaxpr_gan import registry  # noqa: E402
from jaxpr_gan.training import state as state_lib  # noqa: E402
from jaxpr_gan.training import steps as steps_lib  # noqa: E402
# isort: on

TINY = (
  'stargan:tiny',
  'sargan:tiny',
  'mmagan:tiny',
  'dcam:tiny',
  'cyclegan:tiny',
  'twocet:tiny',
  'cyclegan:tiny+official',
  'cyclegan:tiny+unet',
  'dcam:tiny+stargan_am',
)
PAPER = ('stargan:', 'sargan:', 'mmagan:', 'dcam:', 'cyclegan:', 'twocet:')
PAPER_BATCH = 4
del conftest  # imported for its JAX settings, those of the recording


def machine() -> str:
  """The CPU kind, core count and JAX version: XLA:CPU's code (and its sums' order) follows them."""
  model = platform.processor() or platform.machine()
  if os.path.exists('/proc/cpuinfo'):
    with open('/proc/cpuinfo') as f:
      names = [l.split(':', 1)[1].strip() for l in f if l.startswith('model name')]
    model = names[0] if names else model
  return f'{model} x{os.cpu_count()}, jax {jax.__version__}'


def _hex(v) -> str:
  return np.float32(np.asarray(v)).tobytes().hex()


def _digest(tree) -> dict[str, list]:
  leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]
  return {
    jax.tree_util.keystr(p): [
      hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:16],
      float(np.linalg.norm(np.asarray(v, np.float64))),
    ]
    for p, v in leaves
  }


def _vgg_file(directory: str) -> str:
  """A Keras-layout VGG19 weights file with seeded random weights (the paper config reads one)."""
  import h5py  # pylint: disable=import-outside-toplevel

  from jaxpr_gan.models import vgg  # pylint: disable=import-outside-toplevel

  path = os.path.join(directory, 'vgg19_random.h5')
  rng = np.random.default_rng(0)
  with h5py.File(path, 'w') as f:
    convs = vgg.conv_names(19)
    names = [f'block{n[4]}_conv{n[6]}' for n in convs]
    f.attrs['layer_names'] = np.array([n.encode() for n in names])
    cin = 3
    for conv, name in zip(convs, names):
      cout = vgg._channels(conv)  # pylint: disable=protected-access
      g = f.create_group(name)
      g.attrs['weight_names'] = np.array([f'{name}_W:0'.encode(), f'{name}_b:0'.encode()])
      g[f'{name}_W:0'] = (rng.normal(size=(3, 3, cin, cout)) * np.sqrt(2 / (9 * cin))).astype(
        np.float32
      )
      g[f'{name}_b:0'] = np.zeros(cout, np.float32)
      cin = cout
  return path


def config_of(case: str, tmp: str):
  model, variant = case.split(':')
  config = importlib.import_module(f'configs.{model}').get_config(variant)
  if not variant:
    config.batch_size = PAPER_BATCH
    if model == 'dcam':
      config.loss.vgg19_weights = _vgg_file(tmp)
  return config


def batch_for(objective, config) -> dict:
  """A batch of seeded random faces (and cycling labels) of the config's size."""
  rng = np.random.default_rng(0)
  shape = (config.batch_size, config.data.image_size, config.data.image_size, 3)
  if 'label' in objective.batch_keys:
    return {
      'image': rng.integers(0, 256, shape, dtype=np.uint8),
      'label': (np.arange(shape[0]) % config.data.num_classes).astype(np.int32),
    }
  return {k: rng.integers(0, 256, shape, dtype=np.uint8) for k in objective.batch_keys}


def _losses_and_gradients(objective, state, batch, rng) -> dict:
  """D's and G's losses and gradients at the initial state, as the train steps compute them."""

  @jax.jit
  def d_grads(state, batch, rng):
    b, _ = objective.d_inputs(state.aux, state.params['g'], batch, jax.random.fold_in(rng, 2))
    return jax.value_and_grad(objective.d_loss, has_aux=True)(
      state.params['d'], state.params['g'], b, jax.random.fold_in(rng, 0), state.step
    )

  @jax.jit
  def g_grads(state, batch, rng):
    b = objective.g_inputs(state.aux, batch)
    return jax.value_and_grad(objective.g_loss, has_aux=True)(
      state.params['g'], state.params['d'], b, jax.random.fold_in(rng, 1), state.step
    )

  out = {}
  for name, fn in (('d', d_grads), ('g', g_grads)):
    (loss, metrics), grads = fn(state, batch, rng)
    out[name] = {
      'loss': _hex(loss),
      'metrics': {k: _hex(v) for k, v in metrics.items()},
      'grads': _digest(grads),
    }
  return out


def _train_step(objective, config, state, batch, rng) -> dict:
  """One D and one G step as training compiles them, on one device."""
  mesh = steps_lib.make_mesh(jax.devices()[:1])
  d_step, g_step, state_sharding, batch_sharding = steps_lib.compile_steps(
    objective, config, mesh, jax.eval_shape(lambda: state)
  )
  s = jax.device_put(state, state_sharding)
  b = {k: jax.device_put(v, batch_sharding[k]) for k, v in batch.items()}
  s, dm = d_step(s, b, rng)
  s, gm = g_step(s, b, rng)
  return {
    'metrics': {k: _hex(v) for k, v in {**dm, **gm}.items()},
    'state': _digest(
      {'params': s.params, 'opt_state': s.opt_state, 'ema': s.ema_params, 'aux': s.aux}
    ),
  }


def fingerprint(case: str, with_step: bool = True) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    config = registry.complete(config_of(case, tmp))
    objective = registry.build(config, config.data.num_classes)
    state = jax.jit(functools.partial(state_lib.init_state, objective, config))()
    aux, _ = objective.pretrained_aux(state.aux)
  state = state.replace(aux=aux)
  batch = {k: jnp.asarray(v) for k, v in batch_for(objective, config).items()}
  rng = jax.random.fold_in(state.rng, 0)
  out = _losses_and_gradients(objective, state, batch, rng)
  x = images.to_float(batch.get('image', batch.get('image_a')))
  n = x.shape[0]
  target = jnp.arange(n, dtype=jnp.int32) % (
    2 if objective.family == 'two_domain' else config.data.num_classes
  )
  rho = jnp.linspace(0.0, 1.0, n, dtype=jnp.float32)
  image, mask = jax.jit(inference.translate_fn(objective))(
    state.params['g'], x, target, rho, x[::-1]
  )
  out['translate'] = {'image': _digest(image)[''], 'mask': _digest(mask)['']}
  if with_step:
    out['step'] = _train_step(objective, config, state, batch, rng)
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--tier', choices=('tiny', 'paper'), default='tiny')
  parser.add_argument('--out', default='')
  parser.add_argument('--cases', default='')
  args = parser.parse_args()
  cases = args.cases.split(',') if args.cases else (TINY if args.tier == 'tiny' else PAPER)
  result = {'machine': machine(), 'cases': {}}
  for case in cases:
    start = time.time()
    result['cases'][case] = fingerprint(case, with_step=args.tier == 'tiny')
    print(f'{case}: {time.time() - start:.1f} s', file=sys.stderr, flush=True)
  text = json.dumps(result, indent=1, sort_keys=True)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(text + '\n')
  else:
    print(text)


if __name__ == '__main__':
  main()
