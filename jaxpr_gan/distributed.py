"""Multi-process (multi-host) runs: `jax.distributed` setup and per-process data-iterator states.

Every process runs the same program; `training.train` then shards each global batch over every
device of every process (`jax.devices()`), each process reads its own block of the batch, and
process 0 (the chief) alone writes run.json, samples and TensorBoard events; orbax checkpoints
are saved by all processes together.
"""

import json
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np


def initialize(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  cpu_collectives: str | None = None,
) -> None:
  """Joins this process to the run; call it before anything else touches JAX's devices.

  With no arguments JAX detects the cluster (Cloud TPU pod slices, SLURM, Open MPI, ...); give
  all three of `coordinator_address` ('host:port' of process 0), `num_processes` and `process_id`
  elsewhere. `cpu_collectives` ('gloo' or 'mpi') is needed for several processes on CPU only.
  """
  if cpu_collectives:
    jax.config.update('jax_cpu_collectives_implementation', cpu_collectives)
  jax.distributed.initialize(
    coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
  )
  logging.info(
    'Process %d of %d: %d local devices of %d (%s).',
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
    jax.devices()[0].platform,
  )


def _allgather_bytes(data: bytes) -> list[bytes]:
  """Every process's `data`, in process order (a collective: all processes must call it)."""
  length = multihost_utils.process_allgather(np.int32(len(data)))
  size = -(-max(int(length.max()), 1) // 1024) * 1024  # few shapes, few compilations
  padded = np.zeros(size, np.uint8)
  padded[: len(data)] = np.frombuffer(data, np.uint8)
  gathered = multihost_utils.process_allgather(padded)
  return [bytes(row[:n]) for row, n in zip(np.asarray(gathered), np.asarray(length))]


def gather_iterator_states(state: Any) -> Any:
  """The data-iterator state to checkpoint: this one in a single process, else every process's.

  orbax writes JSON items from process 0 only, and each process has its own position in the data
  (they differ once a process has skipped undecodable files), so they are gathered first.
  """
  if jax.process_count() == 1:
    return state
  states = [json.loads(b) for b in _allgather_bytes(json.dumps(state).encode())]
  return {'process_count': jax.process_count(), 'process_states': states}


def own_iterator_state(saved: Any) -> Any:
  """This process's state out of what `gather_iterator_states` saved."""
  if saved is None:
    return None
  saved_count = saved.get('process_count', 1) if isinstance(saved, dict) else 1
  if isinstance(saved, dict) and 'process_states' in saved and saved_count == jax.process_count():
    return saved['process_states'][jax.process_index()]
  if saved_count == jax.process_count():
    return saved
  raise ValueError(
    f'the checkpoint was written by {saved_count} processes and this run has '
    f'{jax.process_count()}: the data-iterator position is per process; resume with '
    f'{saved_count} processes (the state alone can be restored with any number, e.g. by '
    'eval.py).'
  )
