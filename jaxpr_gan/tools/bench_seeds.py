"""Seeds of one sweep point: one vmapped program, or one run after another? Measured.

  python -m jaxpr_gan.tools.bench_seeds --configs=configs/stargan.py:quick,configs/dcam.py:quick

For each config: S seeds trained for the same iterations (a D step each, a G step every
n_critic) on the same batch, once as S states one after another with the plain steps, once as one
state with a seed axis and the vmapped steps (`compile_steps(num_seeds=S)`); prints seconds per
iteration of all seeds, and replaces the section of docs/benchmarks.md with the table and the
machine. `sweep.SEED_MODE` takes its per-backend default from these figures.
"""

import functools
import os
import time

from absl import flags
import jax

from jaxpr_gan import cli
from jaxpr_gan import files
from jaxpr_gan import registry
from jaxpr_gan import sweep_points
from jaxpr_gan import tools
from jaxpr_gan.nn import conv
from jaxpr_gan.tools import bench
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib

SECTION = '## Seeds: one vmapped program or one run after another'


def _runner(config, objective, mesh, seeds, stacked: bool):
  """-> (one iteration of every seed, the compile seconds)."""
  if stacked:
    init = functools.partial(state_lib.init_seeds, objective, config, seeds)
  else:
    init = functools.partial(state_lib.init_state, objective, config)
  abstract = jax.eval_shape(init)
  d_step, g_step, sharding, batch_sharding = steps_lib.compile_steps(
    objective, config, mesh, abstract, num_seeds=len(seeds) if stacked else 0
  )
  states = [jax.jit(init, out_shardings=sharding)() for _ in range(1 if stacked else len(seeds))]
  batch = {
    k: jax.device_put(v, batch_sharding[k]) for k, v in bench._batch(objective, config).items()
  }
  start = time.perf_counter()
  for step in (d_step, g_step):
    step.lower(states[0], batch, steps_lib.step_rng(states[0], 0)).compile()
  compile_s = time.perf_counter() - start
  count = {'i': 0}

  def iteration():
    i = count['i']
    for k, state in enumerate(states):
      rng = steps_lib.step_rng(state, i)
      state, metrics = d_step(state, batch, rng)
      if (i + 1) % config.n_critic == 0:
        state, metrics = g_step(state, batch, rng)
      states[k] = state
    count['i'] += 1
    jax.block_until_ready(states)

  return iteration, compile_s


def measure(config, num_seeds: int = 3, iterations: int = 30) -> dict:
  """Seconds per iteration of all `num_seeds` seeds, one after another and vmapped."""
  config = registry.complete(config)
  objective = registry.build(config, config.data.num_classes)
  mesh = steps_lib.make_mesh()
  seeds = list(range(num_seeds))
  out = {}
  with conv.implementation(config.conv_impl, (steps_lib.platform_of(mesh),)):
    for name, stacked in (('sequential', False), ('vmap', True)):
      iteration, out[f'{name}_compile_s'] = _runner(config, objective, mesh, seeds, stacked)
      for _ in range(config.n_critic):  # warm up: a G step included
        iteration()
      start = time.perf_counter()
      for _ in range(iterations):
        iteration()
      out[name] = (time.perf_counter() - start) / iterations
  return out


def table(rows: list[tuple[str, int, dict]]) -> str:
  lines = [
    '| config | seeds | one after another (s/iteration) | vmapped (s/iteration) | vmapped '
    'speed-up | compile: one after another / vmapped (s) |',
    '|---|---|---|---|---|---|',
  ]
  for name, n, f in rows:
    lines.append(
      f'| `{name}` | {n} | {f["sequential"]:.3f} | {f["vmap"]:.3f} | '
      f'{f["sequential"] / f["vmap"]:.2f} x | {f["sequential_compile_s"]:.0f} / '
      f'{f["vmap_compile_s"]:.0f} |'
    )
  return '\n'.join(lines)


def write_section(path: str, text: str) -> None:
  """Replaces SECTION of the markdown file at `path` (up to the next '## '), or inserts it
  before '## Table'."""
  with open(path) as f:
    doc = f.read()
  block = f'{SECTION}\n\n{text.strip()}\n\n'
  if SECTION in doc:
    start = doc.index(SECTION)
    end = doc.find('\n## ', start + len(SECTION))
    doc = doc[:start] + block + (doc[end + 1 :] if end >= 0 else '')
  else:
    at = doc.index('## Table') if '## Table' in doc else len(doc)
    doc = doc[:at] + block + doc[at:]
  files.write_text(path, doc)


_CONFIGS = flags.DEFINE_list(
  'configs', ['configs/stargan.py:quick', 'configs/dcam.py:quick'], 'Configs to measure.'
)
_SEEDS = flags.DEFINE_integer('seeds', 3, 'Seeds per point.')
_ITERATIONS = flags.DEFINE_integer('iterations', 30, 'Timed iterations (after warm-up).')
_OUT = flags.DEFINE_string(
  'out', os.path.join(tools.ROOT, 'docs', 'benchmarks.md'), "The doc whose section is replaced; ''."
)


def main(argv):
  del argv
  rows = []
  for spec in _CONFIGS.value:
    path, _, variant = spec.partition(':')
    config = sweep_points.load_config(path, variant)
    figures = measure(config, _SEEDS.value, _ITERATIONS.value)
    rows.append((spec, _SEEDS.value, figures))
    print(table(rows[-1:]).splitlines()[-1], flush=True)
  cache = jax.config.jax_compilation_cache_dir
  text = (
    f'`python -m jaxpr_gan.tools.bench_seeds --configs={",".join(_CONFIGS.value)}'
    f'{"" if cache else " --compilation_cache_dir="}` on {bench.machine()}: every seed trained '
    f'on the same batch, {_ITERATIONS.value} iterations timed after a warm-up; compile times '
    f'{"possibly loaded from the persistent cache" if cache else "without the persistent cache"}'
    '. A speed-up below 1: one run after another is faster (`sweep.SEED_MODE`).'
    f'\n\n{table(rows)}\n'
  )
  print(text)
  if _OUT.value:
    write_section(_OUT.value, text)


if __name__ == '__main__':
  cli.run(main)
