"""Trains the expression judge that eval.py scores generated expressions with.

  python -m jaxpr_gan.tools.judge --config configs/stargan.py:quick --workdir workdirs/judge_quick
  python eval.py --workdir workdirs/stargan_quick --config.eval.judge_dir=workdirs/judge_quick

The judge and its training: jaxpr_gan/evaluation/judge.py.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from jaxpr_gan.evaluation import judge


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  meta = judge.train(_CONFIG.value, _WORKDIR.value, _STEPS.value, _BATCH.value, _WIDTH.value)
  print(
    f'judge test accuracy {meta["test_accuracy"]:.4f} on {meta["num_test_images"]} images; '
    f'eval with --config.eval.judge_dir={_WORKDIR.value}'
  )


if __name__ == '__main__':
  from jaxpr_gan import cli  # pylint: disable=g-import-not-at-top

  _CONFIG = config_flags.DEFINE_config_file('config', None, "The run's config (its data).")
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Where to write the judge.')
  _STEPS = flags.DEFINE_integer('steps', 800, 'Training steps.')
  _BATCH = flags.DEFINE_integer('batch_size', 64, 'Batch size.')
  _WIDTH = flags.DEFINE_integer('width', 16, 'Width of the first stage (ResNet-18: 64).')
  flags.mark_flags_as_required(['config', 'workdir'])
  cli.run(main)
