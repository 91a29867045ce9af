"""Trains a model: python train.py --config configs/stargan.py:quick --workdir workdirs/quick

Several processes (hosts): run the same command on every host with --distributed (Cloud TPU pod
slices and SLURM are detected), or with --coordinator_address, --num_processes and --process_id.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from jaxpr_gan import checkpointing
from jaxpr_gan import cli
from jaxpr_gan import distributed
from jaxpr_gan import storage
from jaxpr_gan.training import loop

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'Training configuration file.', lock_config=True
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (checkpoints, logs, samples).')
_DISTRIBUTED = flags.DEFINE_bool(
  'distributed',
  False,
  'Join a multi-process run with jax.distributed.initialize(), which '
  'detects Cloud TPU pod slices, SLURM and Open MPI; the flags below override what it detects.',
)
_COORDINATOR = flags.DEFINE_string(
  'coordinator_address', None, 'host:port of process 0 (implies --distributed).'
)
_NUM_PROCESSES = flags.DEFINE_integer(
  'num_processes', None, 'Number of processes (implies --distributed).'
)
_PROCESS_ID = flags.DEFINE_integer(
  'process_id', None, 'This process, 0 to num_processes - 1 (implies --distributed).'
)
_CPU_COLLECTIVES = flags.DEFINE_enum(
  'cpu_collectives', None, ['gloo', 'mpi'], 'Collectives of multi-process runs on CPU devices.'
)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if (
    _DISTRIBUTED.value
    or _COORDINATOR.value is not None
    or _NUM_PROCESSES.value is not None
    or _PROCESS_ID.value is not None
  ):
    distributed.initialize(
      _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _CPU_COLLECTIVES.value
    )
  checkpointing.quiet_orbax_logging()
  config = _CONFIG.value  # loads the file: a missing one is the first error
  overrides = config_flags.get_override_values(flags.FLAGS['config'])
  logging.info(
    'Config %s%s; workdir %s.',
    config_flags.get_config_filename(flags.FLAGS['config']),
    f' with {overrides}' if overrides else '',
    storage.absolute(_WORKDIR.value),
  )
  loop.train(config, _WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)
