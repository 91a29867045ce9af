"""Step-time benchmark of a config's train step: python -m jaxpr_gan.tools.bench --config CONFIG

Builds the config's objective and the same jit-compiled, sharded, donated d_step/g_step as
training, on a fixed device-resident batch, and measures:
  compile time of each step; D-step and G-step time (median of --steps timed calls after
  --warmup, each ended by block_until_ready); images/s of a training iteration (one D step,
  and a G step every n_critic); FLOPs per step counted analytically from the step's program
  (every convolution and matrix product in its jaxpr whose result is used: 2 x output
  elements x reduction size)
  and by XLA's cost analysis (which leaves out the taps over zero padding and counts the
  elementwise operations too), and the TFLOP/s achieved with each; utilisation against the
  device's peak (accelerators: the vendor's dense figure for the compute dtype; CPU: a measured
  float32 matrix-product rate on this machine); peak device memory (accelerators) or the
  process's peak resident memory (CPU).
Prints one table row and appends it, with the machine it ran on, to docs/benchmarks.md
(--out to change, --out= to skip). --pipeline also measures the grain input pipeline: images/s
per worker for the synthetic faces and for a folder of JPEG files, and the headroom (pipeline
images/s over training images/s, which should be 3 or more).
"""

import functools
import os
import platform
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxpr_gan import files
from jaxpr_gan import registry
from jaxpr_gan import tools
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib

# Dense peak FLOP/s by device kind (substring) and compute dtype, from the vendors' data sheets.
PEAK_FLOPS = {
  'H100': {'bfloat16': 989e12, 'float32': 67e12},  # SXM; float32 without TF32
  'H200': {'bfloat16': 989e12, 'float32': 67e12},
  'A100': {'bfloat16': 312e12, 'float32': 19.5e12},
  'TPU v4': {'bfloat16': 275e12, 'float32': 275e12 / 4},
  'TPU v5 lite': {'bfloat16': 197e12, 'float32': 197e12 / 4},
  'TPU v5p': {'bfloat16': 459e12, 'float32': 459e12 / 4},
}


def _conv_flops(eqn) -> float:
  out = eqn.outvars[0].aval.shape
  rhs = eqn.invars[1].aval.shape
  dn = eqn.params['dimension_numbers']
  # The kernel's reduction: its spatial extent times its input-feature dimension. Of the taps
  # over an input dilated by d (gradients of strided convolutions) only 1/d per axis meet data.
  in_features = rhs[dn.rhs_spec[1]]
  spatial = np.prod([rhs[d] for d in dn.rhs_spec[2:]])
  holes = np.prod(eqn.params.get('lhs_dilation') or (1,))
  return 2.0 * np.prod(out) * spatial * in_features / holes


def _dot_flops(eqn) -> float:
  lhs = eqn.invars[0].aval.shape
  (contract, _), _ = eqn.params['dimension_numbers']
  return 2.0 * np.prod(eqn.outvars[0].aval.shape) * np.prod([lhs[d] for d in contract])


def count_flops(jaxpr) -> float:
  """FLOPs of every convolution and matrix product in a (closed) jaxpr, sub-programs included."""
  total = 0.0
  for eqn in jaxpr.jaxpr.eqns if hasattr(jaxpr, 'jaxpr') else jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'conv_general_dilated':
      total += _conv_flops(eqn)
    elif name == 'dot_general':
      total += _dot_flops(eqn)
    for param in eqn.params.values():
      subs = param if isinstance(param, (tuple, list)) else [param]
      for sub in subs:
        if isinstance(sub, (jax.extend.core.ClosedJaxpr, jax.extend.core.Jaxpr)):
          total += count_flops(sub)
  return total


def live_jaxpr(closed):
  """The jaxpr without the equations whose results nothing uses (as XLA drops them), e.g. the
  input gradient a custom_vjp returns for a network's first layer."""
  try:
    from jax._src.interpreters import partial_eval as pe  # pylint: disable=g-import-not-at-top

    return pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))[0]
  except (ImportError, AttributeError):  # a JAX without it: count everything
    return closed


def _cpu_peak_flops(n: int = 1024, repeats: int = 5) -> float:
  """float32 matrix-product FLOP/s of this machine's CPU devices (the best of a few tries)."""
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = min(_timed(f, a) for _ in range(repeats))
  return 2.0 * n**3 / best


def _timed(fn, *args) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - start


def machine() -> str:
  """This machine in a few words: device kind and count, CPU model and cores, JAX version."""
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
  except (OSError, StopIteration):
    pass
  dev = jax.devices()
  return (
    f'{len(dev)} x {dev[0].device_kind} ({dev[0].platform}); CPU {cpu}, '
    f'{os.cpu_count()} cores; jax {jax.__version__}'
  )


def _batch(objective, config) -> dict:
  rng = np.random.default_rng(0)
  size, b = config.data.image_size, config.batch_size
  batch = {}
  for key in objective.batch_keys:
    if key.startswith('image'):
      batch[key] = rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8)
    else:  # labels
      batch[key] = rng.integers(0, getattr(objective, 'num_classes', 2), (b,), dtype=np.int32)
  return batch


def step_runners(config: ml_collections.ConfigDict, num_classes: int = 5):
  """The config's training D and G steps, compiled, on a fixed device-resident batch: ({'d', 'g'}:
  a call that runs one step to completion, the state carried from call to call), and the
  figures known before running (compile seconds, FLOPs by count and by XLA)."""
  mesh = steps_lib.make_mesh()
  config = registry.complete(config)
  objective = registry.build(config, num_classes)
  abstract = jax.eval_shape(functools.partial(state_lib.init_state, objective, config))
  d_step, g_step, state_sharding, batch_sharding = steps_lib.compile_steps(
    objective, config, mesh, abstract
  )
  carry = {
    'state': jax.jit(
      functools.partial(state_lib.init_state, objective, config), out_shardings=state_sharding
    )()
  }
  batch = {k: jax.device_put(v, batch_sharding[k]) for k, v in _batch(objective, config).items()}
  rng = jax.random.PRNGKey(1)
  figures, runners = {}, {}
  for name, step in (('d', d_step), ('g', g_step)):
    start = time.perf_counter()
    compiled = step.lower(carry['state'], batch, rng).compile()
    figures[f'{name}_compile_s'] = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    # XLA counts the program of one device; every device of the mesh runs it.
    per_device = float(cost.get('flops', float('nan'))) if cost else float('nan')
    figures[f'{name}_flops_xla'] = per_device * mesh.devices.size
    figures[f'{name}_flops'] = count_flops(live_jaxpr(step.trace(carry['state'], batch, rng).jaxpr))

    def call(compiled=compiled, values=step.values):
      carry['state'], metrics = compiled(carry['state'], batch, rng, values)
      jax.block_until_ready((carry['state'], metrics))

    runners[name] = call
  return runners, figures


def run(
  config: ml_collections.ConfigDict,
  num_classes: int = 5,
  steps: int = 10,
  warmup: int = 2,
  trace_dir: str = '',
) -> dict:
  """Measures the config's steps (see the module docstring); -> the figures. With `trace_dir`,
  the timed calls also go into a jax.profiler trace there (TensorBoard's profile plugin or
  Perfetto read it)."""
  runners, figures = step_runners(config, num_classes)
  for name, call in runners.items():
    times = []
    for i in range(warmup + steps):
      if trace_dir and i == warmup:
        jax.profiler.start_trace(os.path.join(trace_dir, f'{name}_step'))
      start = time.perf_counter()
      with jax.profiler.StepTraceAnnotation(f'{name}_step', step_num=i):
        call()
      if i >= warmup:
        times.append(time.perf_counter() - start)
    if trace_dir:
      jax.profiler.stop_trace()
    figures[f'{name}_step_s'] = statistics.median(times)
  iteration = figures['d_step_s'] + figures['g_step_s'] / config.n_critic
  figures['images_per_s'] = config.batch_size / iteration
  flops = figures['d_flops'] + figures['g_flops'] / config.n_critic
  figures['tflops_per_s'] = flops / iteration / 1e12
  xla_flops = figures['d_flops_xla'] + figures['g_flops_xla'] / config.n_critic
  figures['tflops_per_s_xla'] = xla_flops / iteration / 1e12
  dev = jax.devices()[0]
  dtype = config.compute_dtype
  peak = next((v.get(dtype) for k, v in PEAK_FLOPS.items() if k in dev.device_kind), None)
  if dev.platform == 'cpu':
    peak, figures['peak_source'] = _cpu_peak_flops(), 'measured f32 matmul'
  else:
    figures['peak_source'] = 'data sheet' if peak else 'unknown device'
  figures['peak_tflops'] = (peak or float('nan')) * len(jax.devices()) / 1e12
  figures['utilisation'] = figures['tflops_per_s'] / figures['peak_tflops']
  stats = dev.memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    figures['peak_memory_gb'], figures['memory_source'] = stats['peak_bytes_in_use'] / 1e9, 'device'
  else:
    figures['peak_memory_gb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    figures['memory_source'] = 'process RSS'
  return figures


def pipeline_throughput(
  config: ml_collections.ConfigDict,
  source,
  num_workers: int,
  num_batches: int = 20,
  warmup: int = 3,
) -> float:
  """Training images/s that the grain pipeline delivers (decode, crop, resize, flip, batch) with
  `num_workers` worker processes (0: in this process)."""
  from input_pipeline import pipeline  # pylint: disable=g-import-not-at-top

  config = ml_collections.ConfigDict(config.to_dict())
  config.data.num_workers = num_workers
  it = iter(pipeline.create_train_dataset(config, source))
  for _ in range(warmup):
    next(it)
  start = time.perf_counter()
  for _ in range(num_batches):
    next(it)
  return num_batches * config.batch_size / (time.perf_counter() - start)


def jpeg_folder(root: str, config: ml_collections.ConfigDict, count: int = 200) -> str:
  """Writes `count` synthetic faces as JPEG files in root/<class>/ at twice the model's size
  (so that decoding also resizes), as a folder source reads them; -> root."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top

  faces = synthetic.SyntheticFaces(
    split='train',
    size=2 * config.data.image_size,
    num_classes=config.data.num_classes,
    style=config.data.style,
  )
  for i in range(min(count, len(faces))):
    example = faces[i]
    name = faces.class_names[int(example['label'])]
    os.makedirs(os.path.join(root, name), exist_ok=True)
    Image.fromarray(np.asarray(example['image'])).save(
      os.path.join(root, name, f'{i:05d}.jpg'), quality=90
    )
  return root


def pipeline_report(config: ml_collections.ConfigDict, train_images_per_s: float) -> str:
  """Pipeline images/s per worker for the synthetic source and a JPEG folder, and the headroom
  (pipeline images/s with the config's workers over training images/s)."""
  import tempfile  # pylint: disable=g-import-not-at-top

  from input_pipeline import pipeline  # pylint: disable=g-import-not-at-top

  lines = []
  with tempfile.TemporaryDirectory() as tmp:
    folder = ml_collections.ConfigDict(config.to_dict())
    folder.data.source, folder.data.train_dir = 'folder', jpeg_folder(tmp, config)
    for name, c in (
      ('synthetic, first epoch', config),
      ('JPEG folder', folder),
      ('synthetic, after the first epoch (rendered faces kept)', config),
    ):
      source = pipeline.make_source(c.data, 'train')
      # The renderer keeps what it drew (per process): skip one epoch for the steady state.
      warmup = 3 + (len(source) // c.batch_size if 'after' in name else 0)
      one = pipeline_throughput(c, source, 0, warmup=warmup)
      workers = max(c.data.num_workers, 1)
      many = (
        pipeline_throughput(c, source, c.data.num_workers, warmup=warmup)
        if c.data.num_workers
        else one
      )
      lines.append(
        f'{name}: {one:.0f} images/s in-process, {many:.0f} with {workers} '
        f'worker(s) ({many / workers:.0f} per worker); headroom over training '
        f'({train_images_per_s:.1f} images/s): {many / train_images_per_s:.1f}x'
      )
  return '\n'.join(lines)


HEADER = (
  '| date | config | batch | size | dtype | compile D / G (s) | D step (ms) | G step (ms) '
  '| images/s | TFLOP/s (ours / XLA count) | peak TFLOP/s | utilisation | peak memory '
  '(GB) | machine |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
)


def row(name: str, config: ml_collections.ConfigDict, f: dict) -> str:
  return (
    f'| {time.strftime("%Y-%m-%d")} | `{name}` | {config.batch_size} | '
    f'{config.data.image_size} | {config.compute_dtype} | '
    f'{f["d_compile_s"]:.1f} / {f["g_compile_s"]:.1f} | {1e3 * f["d_step_s"]:.1f} | '
    f'{1e3 * f["g_step_s"]:.1f} | {f["images_per_s"]:.1f} | {f["tflops_per_s"]:.3g} / '
    f'{f["tflops_per_s_xla"]:.3g} | {f["peak_tflops"]:.3g} ({f["peak_source"]}) | '
    f'{100 * f["utilisation"]:.1f}% | {f["peak_memory_gb"]:.2f} ({f["memory_source"]}) | '
    f'{machine()} |\n'
  )


def append(
  path: str,
  line: str,
  header: str = HEADER,
  intro: str = '# Benchmarks\n\nStep times of `python -m jaxpr_gan.tools.bench` (newest last).',
) -> None:
  """Appends a row to the table at the end of `path` (made with `intro` and `header` if new)."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  if os.path.exists(path):
    with open(path) as f:
      text = f.read()
  else:
    text = intro + '\n\n' + header
  files.write_text(path, text + line)


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  config = f.config
  figures = run(config, f.num_classes, f.steps, f.warmup, f.trace_dir)
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  name = config_flags.get_config_filename(f['config']).replace(os.getcwd() + '/', '')
  line = row(f.name or name, config, figures)
  print(HEADER + line, end='')
  if f.pipeline:
    print(pipeline_report(config, figures['images_per_s']))
  if f.out:
    append(f.out, line)
    print(f'appended to {f.out}')


if __name__ == '__main__':
  from absl import flags as _flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  from jaxpr_gan import cli  # pylint: disable=g-import-not-at-top

  config_flags.DEFINE_config_file('config', None, 'Config to benchmark.', lock_config=False)
  _flags.DEFINE_integer('steps', 10, 'Timed calls of each step.')
  _flags.DEFINE_integer('warmup', 2, 'Untimed calls first.')
  _flags.DEFINE_integer('num_classes', 5, 'Classes of the conditional models.')
  _flags.DEFINE_string('name', None, 'Name of the row (default: the config argument).')
  _flags.DEFINE_string(
    'out',
    os.path.join(tools.ROOT, 'docs', 'benchmarks.md'),
    'Markdown file to append to ("" to skip).',
  )
  _flags.DEFINE_string(
    'trace_dir', '', 'Also write a jax.profiler trace of the timed steps here (one per step kind).'
  )
  _flags.DEFINE_bool(
    'pipeline',
    False,
    'Also measure the input pipeline (synthetic faces and a '
    'JPEG folder written to a temporary directory) and its headroom.',
  )
  _flags.mark_flags_as_required(['config'])
  cli.run(main)
