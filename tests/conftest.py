"""Test setup: 8 virtual CPU devices, fast compiles, a persistent compilation cache, absl flags."""
import os
import sys

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # pylint: disable=g-import-not-at-top
import jax  # pylint: disable=g-import-not-at-top

jax.config.update('jax_disable_most_optimizations', True)
jax.config.update('jax_compilation_cache_dir',
                  os.path.join(os.path.dirname(os.path.dirname(__file__)), '.jax_cache'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
# grain worker processes and absl-based code read flags; pytest does not parse them.
flags.FLAGS.mark_as_parsed()
