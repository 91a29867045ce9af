"""Test setup: 8 virtual CPU devices, fast compiles, a persistent compilation cache, absl flags;
`subprocess_env` gives a test's child processes (train.py, workers) the same settings."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# XLA:CPU's older fusion emitter compiles the tiny test steps in about 60% of the time (StarGAN
# tiny D + G: 5.1 s against 8.5 s); training and benchmarks keep the default emitters.
_XLA_FLAGS = '--xla_cpu_use_fusion_emitters=false'
_JAX_SETTINGS = {
  'jax_disable_most_optimizations': True,
  'jax_compilation_cache_dir': os.path.join(ROOT, '.jax_cache'),
  'jax_persistent_cache_min_compile_time_secs': 0.5,
}


def subprocess_env(device_count: int) -> dict[str, str]:
  """os.environ with this file's JAX settings, for a child process with `device_count` CPU
  devices (through jax's environment variables)."""
  env = dict(
    os.environ,
    JAX_PLATFORMS='cpu',
    XLA_FLAGS=(f'{_XLA_FLAGS} --xla_force_host_platform_device_count={device_count}'),
  )
  env.update(
    {k.upper(): str(int(v) if isinstance(v, bool) else v) for k, v in _JAX_SETTINGS.items()}
  )
  return env


os.environ['XLA_FLAGS'] = (
  os.environ.get('XLA_FLAGS', '') + f' {_XLA_FLAGS} --xla_force_host_platform_device_count=8'
).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
sys.path.insert(0, ROOT)

from absl import flags  # noqa: E402  (after the environment above)
import jax  # noqa: E402

for _name, _value in _JAX_SETTINGS.items():
  jax.config.update(_name, _value)
# grain worker processes and absl-based code read flags; pytest does not parse them.
flags.FLAGS.mark_as_parsed()

# The slowest files first (their durations on the 2-core VM): with `--dist loadfile
# --no-loadscope-reorder` (Makefile) the two workers take files in this order as they free up, so
# they end close together instead of one running a long file alone at the end.
_SLOWEST_FIRST = (
  'test_reference_values.py',
  'test_adversarial.py',
  'test_export_paper.py',
  'test_resilience.py',
  'test_cli.py',
  'test_guards.py',
  'test_twocet.py',
  'test_multihost.py',
  'test_bucket_runs.py',
  'test_dcam.py',
  'test_step_values.py',
  'test_export_edit.py',
  'test_twocet_convert.py',
  'test_eval_suite.py',
)


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(_SLOWEST_FIRST)}
  items.sort(key=lambda item: rank.get(os.path.basename(str(item.path)), len(rank)))
