"""The benchmark's figures, and what makes the train step fast: one compilation, no transfers."""

import functools
import importlib
import logging
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import stargan as stargan_config
from jaxpr_gan import registry
from jaxpr_gan.tools import bench
from jaxpr_gan.training import loop
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib


def _conv(x, w, stride):
  return jax.lax.conv_general_dilated(
    x, w, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )


def test_flop_count_of_convolutions_and_matrix_products_by_hand():
  x, w = jnp.ones((4, 16, 16, 8)), jnp.ones((4, 4, 8, 16))
  # Output 4 x 8 x 8 x 16, each a sum over 4 x 4 x 8 products: 2 FLOPs per product.
  forward = 2 * (4 * 8 * 8 * 16) * (4 * 4 * 8)
  assert bench.count_flops(jax.make_jaxpr(functools.partial(_conv, stride=2))(x, w)) == forward
  # The input gradient runs over an input dilated by 2: as many useful products as forward.
  grad_x = jax.make_jaxpr(jax.grad(lambda x: _conv(x, w, 2).sum()))(x)
  assert bench.count_flops(grad_x) == 2 * forward  # the forward pass, then the gradient
  a, b = jnp.ones((3, 5, 7)), jnp.ones((7, 11))
  assert bench.count_flops(jax.make_jaxpr(jnp.matmul)(a, b)) == 2 * 3 * 5 * 11 * 7
  nested = jax.make_jaxpr(jax.jit(lambda a: jax.jit(jnp.matmul)(a, b)))(a)  # sub-programs
  assert bench.count_flops(nested) == 2 * 3 * 5 * 11 * 7


def test_benchmark_figures_of_a_tiny_config(tmp_path):
  config = stargan_config.get_config('tiny')
  f = bench.run(config, steps=2, warmup=1, trace_dir=str(tmp_path / 'trace'))
  assert f['d_step_s'] > 0 and f['g_step_s'] > 0 and f['d_compile_s'] > 0
  for kind in ('d_step', 'g_step'):  # a profiler trace of each step's timed calls
    traces = [n for _, _, files in os.walk(tmp_path / 'trace' / kind) for n in files]
    assert any(n.endswith('.xplane.pb') for n in traces), traces
  iteration = f['d_step_s'] + f['g_step_s'] / config.n_critic
  assert f['images_per_s'] == pytest.approx(config.batch_size / iteration)
  # Our count and XLA's differ by the taps over zero padding (XLA leaves them out) and the
  # elementwise operations (XLA counts them): within tens of percent.
  for net in ('d', 'g'):
    assert 0.7 <= f[f'{net}_flops'] / f[f'{net}_flops_xla'] < 1.4, f
  assert f['g_flops'] > f['d_flops'] > 0  # G's step also runs D, and G twice (the cycle)
  assert f['peak_source'] == 'measured f32 matmul' and f['peak_tflops'] > 0
  out = tmp_path / 'bench.md'
  bench.append(str(out), bench.row('tiny', config, f))
  bench.append(str(out), bench.row('tiny', config, f))
  text = out.read_text()
  assert text.count('| date |') == 1 and text.count('`tiny`') == 2 and 'cpu' in text


def _library_fusions(compiled_text: str) -> list[set[str]]:
  """The operations inside each YNNPACK fusion of a compiled CPU program."""
  fusions = []
  for m in re.finditer(r'fusion\(.*?calls=%(\S+),.*?"kind":"__ynn_fusion"', compiled_text):
    body = re.search(r'^%' + re.escape(m.group(1)) + r' .*?^}', compiled_text, re.M | re.S)
    fusions.append(set(re.findall(r'= \S+ ([a-z][\w-]*)\(', body.group(0))) - {'parameter'})
  return fusions


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='an XLA:CPU option')
def test_cpu_train_steps_leave_convolutions_to_eigen():
  config = stargan_config.get_config('tiny')
  objective = registry.build(config, 5)
  mesh = steps_lib.make_mesh()
  abstract = jax.eval_shape(functools.partial(state_lib.init_state, objective, config))
  _, g_step, state_sharding, batch_sharding = steps_lib.compile_steps(
    objective, config, mesh, abstract
  )
  state = jax.tree.map(
    lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), abstract, state_sharding
  )
  batch = {
    k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_sharding[k])
    for k, v in bench._batch(objective, config).items()
  }  # pylint: disable=protected-access
  text = g_step.lower(state, batch, jax.random.PRNGKey(0)).compile().as_text()
  fusions = _library_fusions(text)
  assert any('dot' in f for f in fusions)  # YNNPACK still runs the matrix products
  assert not [f for f in fusions if 'convolution' in f]
  assert 'convolution(' in text


def _train_recording_compiles_and_waits(config, workdir, monkeypatch):
  """Trains `config` in `workdir`; returns the final state, jax's 'Compiling ...' log messages,
  and per D step queued the number of outputs of the steps before the last one not waited for.
  The recording patches stay in place: the caller undoes `monkeypatch`."""
  compiled = []
  waited, d_metrics = set(), []
  unwaited = []  # per D step queued: outputs of the steps before the last one not waited for
  compile_steps, block_until_ready = steps_lib.compile_steps, jax.block_until_ready

  def recording_block_until_ready(x):
    waited.update(id(leaf) for leaf in jax.tree.leaves(x))
    return block_until_ready(x)

  def recording_compile_steps(*args, **kwargs):
    d_step, *rest = compile_steps(*args, **kwargs)

    def recording_d_step(state, batch, rng):
      unwaited.append(sum(id(x) not in waited for x in jax.tree.leaves(d_metrics[:-1])))
      state, metrics = d_step(state, batch, rng)
      d_metrics.append(metrics)
      return state, metrics

    recording_d_step.lower = d_step.lower  # memory.check compiles it ahead of the first call
    return (recording_d_step, *rest)

  monkeypatch.setattr(loop.steps_lib, 'compile_steps', recording_compile_steps)
  monkeypatch.setattr(jax, 'block_until_ready', recording_block_until_ready)

  class Collect(logging.Handler):
    def emit(self, record):
      message = record.getMessage()
      if message.startswith('Compiling '):
        compiled.append(message)  # name, shapes and shardings

  handler = Collect()
  jax_logger = logging.getLogger('jax')
  jax_logger.addHandler(handler)
  try:
    with jax.log_compiles():
      state = loop.train(config, workdir)
  finally:
    jax_logger.removeHandler(handler)
  return state, compiled, unwaited


def _compiled_steps_and_device_inputs(config):
  """The compiled D and G steps, with a state, a batch and a key already on the devices."""
  mesh = steps_lib.make_mesh()
  objective = registry.build(config, 5)
  abstract = jax.eval_shape(functools.partial(state_lib.init_state, objective, config))
  d_step, g_step, state_sharding, batch_sharding = steps_lib.compile_steps(
    objective, config, mesh, abstract
  )
  state = jax.jit(
    functools.partial(state_lib.init_state, objective, config), out_shardings=state_sharding
  )()
  size = config.data.image_size
  batch = {
    'image': jax.device_put(
      np.zeros((config.batch_size, size, size, 3), np.uint8), batch_sharding['image']
    ),
    'label': jax.device_put(
      np.arange(config.batch_size, dtype=np.int32) % 5, batch_sharding['label']
    ),
  }
  rng = jax.device_put(
    jax.random.PRNGKey(0), jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  )
  return d_step, g_step, state, batch, rng


def test_training_compiles_each_step_once_queues_two_never_transfers(tmp_path, monkeypatch):
  config = stargan_config.get_config('tiny')
  config.num_train_steps = 6
  # No log, sample or checkpoint waits for a step before the end: only the loop's bound on the
  # steps in flight does. Its waits are recorded (whether a step is done by then depends on speed).
  config.log_every = config.sample_every = config.checkpoint_every = 6
  state, compiled, unwaited = _train_recording_compiles_and_waits(
    config, str(tmp_path / 'run'), monkeypatch
  )
  names = [c.split(' ')[1] for c in compiled]
  assert names.count('jit(d_step)') == 1 and names.count('jit(g_step)') == 1, names
  assert len(compiled) == len(set(compiled)), 'a function was compiled twice for one signature'
  assert int(state.step) == 6
  # At most two steps in flight: before step t is queued, the loop waited for every step before
  # t - 1.
  assert unwaited == [0] * 6
  monkeypatch.undo()

  # Inside a step nothing moves between host and device: inputs already live on the devices.
  d_step, g_step, state, batch, rng = _compiled_steps_and_device_inputs(config)
  with jax.transfer_guard('disallow'):
    for _ in range(2):
      state, _ = d_step(state, batch, rng)
      state, _ = g_step(state, batch, rng)
    jax.block_until_ready(state)
  with pytest.raises(Exception, match='[Dd]isallowed'):
    with jax.transfer_guard('disallow'):  # the guard does catch a host array
      d_step(state, dict(batch, label=np.zeros(config.batch_size, np.int32)), rng)


@pytest.mark.parametrize('name', ['stargan', 'twocet'])  # WGAN-GP; R1 and AdaIN
def test_bfloat16_compute_keeps_losses_within_1_percent_of_float32(name):
  """Mixed precision: the same float32 parameters, batch and keys; every loss term within 1%
  (or 0.01 where it is below 1) of its float32 value (accuracies, being counts, are not)."""
  module = importlib.import_module(f'configs.{name}')
  c32, c16 = module.get_config('tiny'), module.get_config('tiny')
  c16.compute_dtype = 'bfloat16'
  o32, o16 = registry.build(c32, 5), registry.build(c16, 5)
  size = c32.data.image_size
  images = np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
  params = o32.init(jax.random.PRNGKey(0), images[:1])
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  batch = {
    k: images if k.startswith('image') else np.arange(8, dtype=np.int32) % 5 for k in o32.batch_keys
  }
  rng = jax.random.PRNGKey(1)
  metrics = []
  for o in (o32, o16):
    d_batch, _ = o.d_inputs(o.init_aux(size), params['g'], batch, rng)
    _, d = jax.jit(o.d_loss)(params['d'], params['g'], d_batch, rng, 0)
    _, g = jax.jit(o.g_loss)(params['g'], params['d'], batch, rng, 0)
    metrics.append({**d, **g})
  lowered = jax.jit(o16.g_loss).lower(params['g'], params['d'], batch, rng, 0).as_text()
  assert 'bf16' in lowered  # the networks do compute in bfloat16
  for key, exact in metrics[0].items():
    if key.endswith('_acc'):
      continue
    exact, mixed = float(exact), float(metrics[1][key])
    assert abs(mixed - exact) <= 0.01 * max(abs(exact), 1.0), (key, exact, mixed)


def test_pipeline_throughput_of_the_synthetic_source_and_a_jpeg_folder(tmp_path):
  from input_pipeline import pipeline  # pylint: disable=g-import-not-at-top

  config = stargan_config.get_config('tiny')
  root = bench.jpeg_folder(str(tmp_path / 'faces'), config, count=10)
  folder = config.copy_and_resolve_references()
  folder.data.source, folder.data.train_dir = 'folder', root
  source = pipeline.make_source(folder.data, 'train')
  assert len(source) == 10 and len(source.class_names) == config.data.num_classes
  for c, s in ((config, pipeline.make_source(config.data, 'train')), (folder, source)):
    assert bench.pipeline_throughput(c, s, num_workers=0, num_batches=2, warmup=1) > 0
