"""Evaluates a checkpoint: python eval.py --workdir workdirs/stargan_quick

The config is the one saved with the checkpoint; --config replaces it (e.g. to add the files of
the distribution metrics: --config=configs/stargan.py:quick --config.eval.inception_weights=...),
and each key where it departs from the checkpoint's is listed in one warning. metrics.json and
report.html record the config used and its hash; the numbers also go to TensorBoard, at the
checkpoint's step, in the folder holding the evaluation's (the workdir unless --out).
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from jaxpr_gan import checkpointing
from jaxpr_gan import cli
from jaxpr_gan.evaluation import evaluate

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, "A config to evaluate with instead of the checkpoint's own.", lock_config=True
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory holding checkpoints/.')
_STEP = flags.DEFINE_integer(
  'step', None, 'Checkpoint step to evaluate (default: the newest intact one).'
)
_OUT = flags.DEFINE_string(
  'out', None, 'Folder for the evaluation (default: WORKDIR/eval), e.g. for a read-only run.'
)
flags.mark_flags_as_required(['workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  checkpointing.quiet_orbax_logging()
  evaluate.evaluate(_WORKDIR.value, _STEP.value, _CONFIG.value, _OUT.value)


if __name__ == '__main__':
  cli.run(main)
