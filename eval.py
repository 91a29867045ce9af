"""Evaluates a checkpoint: python eval.py --config configs/stargan.py:quick --workdir workdirs/quick"""
from absl import app
from absl import flags
from ml_collections import config_flags

from jaxpr_gan import checkpointing
from jaxpr_gan import evaluation

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Configuration the run was trained with.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory holding checkpoints/.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate (default: the latest).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  checkpointing.quiet_orbax_logging()
  evaluation.evaluate(_CONFIG.value, _WORKDIR.value, _STEP.value)


if __name__ == '__main__':
  app.run(main)
