"""Imports the official PyTorch checkpoints into a run directory that eval.py and edit read.

  python -m jaxpr_gan.tools.convert --config configs/stargan.py \
      --workdir workdirs/stargan_official --generator 200000-G.ckpt \
      --discriminator 200000-D.ckpt --class_names Black_Hair,Blond_Hair,Brown_Hair,Male,Young

Which official file feeds which network, and the key names: the model's converter
(`registry.Model.converter`, jaxpr_gan/converters.py). torch is needed for reading only. The run
gets a checkpoint at step 0 (or --step) holding the converted weights (the EMA copy of G too,
when the config keeps one; networks not given keep their random initialisation, as the metadata
records) and the class names, so eval.py and `python -m jaxpr_gan.tools.edit` use it as a
trained run.
"""

import os
import re
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxpr_gan import checkpointing
from jaxpr_gan import converters
from jaxpr_gan import errors
from jaxpr_gan import registry
from jaxpr_gan.evaluation import restore as restore_lib


def load_state_dict(path: str) -> converters.StateDict:
  """A PyTorch checkpoint file -> {official key: numpy array} (torch imported only here)."""
  if not os.path.isfile(path):
    raise errors.NotFound(f'checkpoint file not found: {path}')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('reading a PyTorch checkpoint needs torch: pip install torch') from e
  obj = torch.load(path, map_location='cpu', weights_only=True)
  for wrapper in ('state_dict', 'model'):  # checkpoints saved as {'state_dict': ...}
    if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
      obj = obj[wrapper]
  if not isinstance(obj, dict) or not all(hasattr(v, 'numpy') for v in obj.values()):
    raise errors.BadInput(f'{path} is not a state dict (a dict of tensors)')
  # nn.DataParallel prefixes every key with 'module.'
  return {re.sub(r'^module\.', '', k): v.detach().cpu().numpy() for k, v in obj.items()}


def convert_params(
  config: ml_collections.ConfigDict, files: dict[str, str], template: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
  """Official files by role ('generator', 'discriminator', 'generator_b', 'discriminator_b')
  -> (params shaped like `template` with the given networks replaced, the networks replaced)."""
  model = registry.get(config.model)
  if model.converter is None:
    known = [n for n in registry.names() if registry.get(n).converter is not None]
    raise errors.BadInput(
      f'no official checkpoint converter for model {config.model!r}; converters exist for {known}.'
    )
  networks = model.converter(config)
  roles = {role for role, _, _ in networks.values()}
  unknown = sorted(set(files) - roles)
  if unknown:
    raise errors.BadInput(
      f'{config.model} checkpoints have the roles {sorted(roles)}, not {unknown}'
    )
  if 'generator' not in files:
    raise errors.BadInput('the generator checkpoint is required')
  params = jax.tree.map(np.asarray, template)
  replaced = []
  for where, (role, prefix_of, skip) in networks.items():
    if role not in files:
      continue
    side, _, sub = where.partition('/')
    target = params[side][sub] if sub else params[side]
    converted = converters.convert_tree(
      load_state_dict(files[role]), target, prefix_of, skip, what=f'{role} ({files[role]})'
    )
    if sub:
      params[side][sub] = converted
    else:
      params[side] = converted
    replaced.append(where)
  return params, replaced


def import_run(
  config: ml_collections.ConfigDict,
  files: dict[str, str],
  class_names: list[str],
  workdir: str,
  step: int = 0,
) -> list[str]:
  """Writes a run directory whose checkpoint holds the converted weights; -> networks replaced."""
  config = registry.complete(config)
  if registry.get(config.model).family == 'conditional' and not class_names:
    raise errors.BadInput(
      '--class_names is required: the official checkpoint does not record '
      'them (e.g. Black_Hair,Blond_Hair,Brown_Hair,Male,Young for StarGAN '
      'on CelebA)'
    )
  for path in files.values():  # before anything is written
    if not os.path.isfile(path):
      raise errors.NotFound(f'checkpoint file not found: {path}')
  class_names = list(class_names) or ['A', 'B']
  replaced = []

  def set_params(template):
    params, done = convert_params(config, files, template)
    replaced.extend(done)
    return params

  meta = {
    'imported': {
      'files': {k: os.path.abspath(v) for k, v in files.items()},
      'converted': replaced,
      'source': config.model,
    }
  }
  restore_lib.write_run(config, class_names, workdir, set_params, step, meta)
  return replaced


def main(argv):
  """Command line: see the module docstring."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  files = {
    role: getattr(f, role)
    for role in ('generator', 'discriminator', 'generator_b', 'discriminator_b')
    if getattr(f, role)
  }
  checkpointing.quiet_orbax_logging()
  replaced = import_run(f.config, files, f.class_names or [], f.workdir, f.step)
  print(
    f'imported {", ".join(replaced)} into {f.workdir} (step {f.step}); evaluate with\n'
    f'  python eval.py --workdir {f.workdir}\nor edit a photo with\n'
    f'  python -m jaxpr_gan.tools.edit --model {f.workdir} --input photo.jpg ...'
  )


if __name__ == '__main__':
  from absl import flags as _flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  from jaxpr_gan import cli  # pylint: disable=g-import-not-at-top

  config_flags.DEFINE_config_file(
    'config',
    None,
    'Config that builds the official network (e.g. configs/stargan.py).',
    lock_config=True,
  )
  _flags.DEFINE_string('workdir', None, 'New run directory to write.')
  _flags.DEFINE_string('generator', None, 'Official G checkpoint (CycleGAN: G_A, A -> B).')
  _flags.DEFINE_string('discriminator', None, 'Official D checkpoint (CycleGAN: D_A).')
  _flags.DEFINE_string('generator_b', None, 'CycleGAN only: G_B (B -> A).')
  _flags.DEFINE_string('discriminator_b', None, 'CycleGAN only: D_B.')
  _flags.DEFINE_list('class_names', None, 'Class names in the order of the official labels.')
  _flags.DEFINE_integer('step', 0, 'Step number to record the imported weights at.')
  _flags.mark_flags_as_required(['config', 'workdir', 'generator'])
  cli.run(main)
