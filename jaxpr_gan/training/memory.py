"""Does the batch fit? The compiled steps' own memory figures against the device's memory, known
before the first step runs (a batch too large otherwise ends, after minutes, in an allocator abort
such as `std::bad_alloc` or a device out-of-memory error).

The steps are compiled ahead of time with exactly the shapes and shardings of the first call, so
that call reuses the executable: the check costs no second compilation.
"""

import os

import jax
import numpy as np

from jaxpr_gan import errors


def _batch_specs(objective, config, batch_sharding) -> dict:
  """The global batch as the loop puts it on the mesh (uint8 images, int32 labels)."""
  size, b = config.data.image_size, config.batch_size
  specs = {}
  for key in objective.batch_keys:
    shape, dtype = ((b, size, size, 3), np.uint8) if key.startswith('image') else ((b,), np.int32)
    specs[key] = jax.ShapeDtypeStruct(shape, dtype, sharding=batch_sharding[key])
  return specs


def _host_available_bytes() -> int | None:
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
  except (ValueError, OSError):
    return None


def device_memory(mesh) -> tuple[int | None, str]:
  """-> (bytes one device may use, what that is). CPU devices share the host's available memory."""
  device = next(d for d in mesh.devices.flat if d.process_index == jax.process_index())
  try:
    stats = device.memory_stats()
  except (AttributeError, RuntimeError, jax.errors.JaxRuntimeError):
    stats = None
  if stats and stats.get('bytes_limit'):
    return int(stats['bytes_limit']), f'{device.device_kind} memory'
  available = _host_available_bytes()
  if available is None:
    return None, ''
  local = max(len(jax.local_devices()), 1)
  return available // local, f'host memory available to each of {local} CPU devices'


def step_bytes(compiled) -> int | None:
  """Peak bytes of one device for a compiled step: arguments, outputs not aliased, temporaries."""
  stats = compiled.memory_analysis()
  if stats is None:
    return None
  return (
    stats.argument_size_in_bytes
    + stats.output_size_in_bytes
    - stats.alias_size_in_bytes
    + stats.temp_size_in_bytes
  )


def _gib(n: int) -> str:
  return f'{n / 2**30:.2f} GiB'


def check(objective, config, steps, state_template, state_sharding, batch_sharding) -> None:
  """Compiles the (D, G) `steps` for their first call; raises ConfigError naming batch_size when
  a step needs more memory than a device has."""
  state = jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state_template, state_sharding
  )
  batch = _batch_specs(objective, config, batch_sharding)
  rng = state.rng
  limit, what = device_memory(next(iter(batch_sharding.values())).mesh)
  for name, step in zip(('D', 'G'), steps):
    need = step_bytes(step.lower(state, batch, rng).compile())
    if limit is None or need is None or need <= limit:
      continue
    b, devices = config.batch_size, len(jax.devices())
    fits = max(devices, int(b * limit / need) // devices * devices)
    raise errors.ConfigError(
      f'config.batch_size = {b} needs about {_gib(need)} per device for the {name} step but the '
      f'{what} is {_gib(limit)}; lower --config.batch_size (about {fits} fits).'
    )
