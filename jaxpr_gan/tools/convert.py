"""Imports the official PyTorch checkpoints into a run directory that eval.py and edit read.

  python -m jaxpr_gan.tools.convert --config configs/stargan.py \
      --workdir workdirs/stargan_official --generator 200000-G.ckpt \
      --discriminator 200000-D.ckpt --preset celeba
  python -m jaxpr_gan.tools.convert --config configs/twocet.py --workdir workdirs/twocet_official \
      --checkpoint 100000_model.ckpt --ema_checkpoint 100000_model_s.ckpt

Which official file feeds which network, and the key names: the model's converter
(`registry.Model.converter`, jaxpr_gan/converters.py); 2CET-GAN's official file holds G, E and D
(--checkpoint), its `_s` file the EMA G and E (--ema_checkpoint, our EMA copy). torch is needed
for reading only. The class names, which the official files do not record, come from
--class_names or a preset of the official orders (--preset; StarGAN's default 'celeba', SARGAN's
'sargan'). Every file is read, checked against the config (its role, number of classes, image
size) and mapped before anything is written; a mistake is one line naming the flag to fix, and
leaves nothing behind. The run gets a checkpoint at step 0 (or --step) holding the converted
weights (the EMA copy of G too, when the config keeps one; networks not given keep their random
initialisation, as the metadata records) and the class names, so eval.py and
`python -m jaxpr_gan.tools.edit` use it as a trained run.
"""

import functools
import os
import re
import shutil
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxpr_gan import checkpointing
from jaxpr_gan import converters
from jaxpr_gan import errors
from jaxpr_gan import registry
from jaxpr_gan.evaluation import restore as restore_lib
from jaxpr_gan.training import state as state_lib

ROLES = ('generator', 'discriminator', 'generator_b', 'discriminator_b')
BUNDLE_FLAGS = ('checkpoint', 'ema_checkpoint')  # files holding several networks (2CET-GAN)


def _torch_load(path: str, flag: str) -> Any:
  """A PyTorch checkpoint file's object (torch imported only here)."""
  if not os.path.isfile(path):
    raise errors.NotFound(f'checkpoint file not found: {path} (give the right path as {flag})')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('reading a PyTorch checkpoint needs torch: pip install torch') from e
  try:
    return torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  # garbage fails in many ways
    raise errors.BadInput(
      f'{flag} {path} is not a PyTorch checkpoint (torch.load failed: {type(e).__name__}): give '
      'the official .ckpt/.pth state dict file'
    ) from e


def _numpy_state_dict(obj: Any, what: str) -> converters.StateDict:
  """A loaded state dict -> {official key: numpy array}; `what` names it in the errors."""
  for wrapper in ('state_dict', 'model'):  # checkpoints saved as {'state_dict': ...}
    if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
      obj = obj[wrapper]
  if not isinstance(obj, dict) or not all(hasattr(v, 'numpy') for v in obj.values()):
    raise errors.BadInput(f'{what} is not a state dict (a dict of tensors)')
  # nn.DataParallel prefixes every key with 'module.'
  return {re.sub(r'^module\.', '', k): v.detach().cpu().numpy() for k, v in obj.items()}


def load_state_dict(path: str, flag: str = 'checkpoint') -> converters.StateDict:
  """A PyTorch checkpoint file -> {official key: numpy array}; `flag` (e.g. '--generator') names
  the file in the errors."""
  return _numpy_state_dict(_torch_load(path, flag), f'{flag} {path}')


def load_bundle(path: str, flag: str, names: tuple[str, ...]) -> dict[str, converters.StateDict]:
  """A file holding a dict of state dicts (2CET-GAN's save_model) -> {name: state dict}."""
  obj = _torch_load(path, flag)
  held = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
  if not isinstance(obj, dict) or set(names) - set(obj):
    raise errors.BadInput(
      f'{flag} {path} holds {held}, not the networks {list(names)} of the official file for '
      f'{flag} (e.g. 100000_model.ckpt for --checkpoint, 100000_model_s.ckpt for --ema_checkpoint)'
    )
  return {n: _numpy_state_dict(obj[n], f'{flag} {path} [{n!r}]') for n in names}


def load_files(
  config: ml_collections.ConfigDict, files: dict[str, str]
) -> tuple[dict[str, converters.StateDict], dict[str, converters.StateDict], dict[str, str]]:
  """Official files by flag -> (state dicts by role, the EMA file's by role, role -> the flag
  and file for the messages). A model whose official file holds several networks
  (`converters.BUNDLES`) reads --checkpoint [--ema_checkpoint]; the others one file per role."""
  bundles = converters.BUNDLES.get(_converter(config))
  if bundles is not None and 'checkpoint' not in files:
    raise errors.BadInput(
      f'{config.model} keeps its networks in one official file: give --checkpoint '
      '(e.g. 100000_model.ckpt) and optionally --ema_checkpoint (100000_model_s.ckpt)'
    )
  state_dicts, ema, flags = {}, {}, {}
  for flag, path in files.items():
    if flag in BUNDLE_FLAGS:
      if bundles is None:
        raise errors.BadInput(
          f'--{flag} is for models whose official file holds several networks '
          f'({_bundled_models()}); {config.model} takes --generator (and --discriminator)'
        )
      loaded = load_bundle(path, f'--{flag}', bundles[flag])
      (ema if flag == 'ema_checkpoint' else state_dicts).update(loaded)
      flags.update({n: f'--{flag} {path} [{n!r}]' for n in loaded if flag == 'checkpoint'})
    elif bundles is not None:
      raise errors.BadInput(f'{config.model} reads --checkpoint, not --{flag}: drop --{flag}')
    else:
      state_dicts[flag] = load_state_dict(path, f'--{flag}')
      flags[flag] = f'--{flag} {path}'
  return state_dicts, ema, flags


def _bundled_models() -> str:
  return ', '.join(n for n in registry.names() if registry.get(n).converter in converters.BUNDLES)


def _converter(config: ml_collections.ConfigDict):
  """The model's converter, or a one-line error naming the configs that have one."""
  model = registry.get(config.model)
  if model.converter is None:
    known = [n for n in registry.names() if registry.get(n).converter is not None]
    raise errors.BadInput(
      f'no official checkpoint converter for model {config.model!r}; converters exist for '
      f'{known}: give --config configs/<one of them>.py'
    )
  return model.converter


def convert_state_dicts(
  config: ml_collections.ConfigDict,
  state_dicts: dict[str, converters.StateDict],
  template: Any,
  flags: dict[str, str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
  """Official state dicts by role ('generator', 'discriminator', 'generator_b',
  'discriminator_b') -> (the converted networks by where they go in `template`, e.g. 'g' or
  'g/a2b', in the converter's order); `template` holds our params or their shapes; `flags`
  names each role's file in the errors."""
  networks = _converter(config)(config)
  roles = {role for role, _, _ in networks.values()}
  unknown = sorted(set(state_dicts) - roles)
  if unknown:
    raise errors.BadInput(
      f'{config.model} checkpoints have the roles {sorted(roles)}: drop --{unknown[0]}'
    )
  if 'generator' not in state_dicts:
    raise errors.BadInput('the generator checkpoint is required: give --generator')
  converted = {}
  for where, (role, prefix_of, skip) in networks.items():
    if role in state_dicts:
      side, _, sub = where.partition('/')
      target = template[side][sub] if sub else template[side]
      what = (flags or {}).get(role, f'--{role}')
      converted[where] = converters.convert_tree(state_dicts[role], target, prefix_of, skip, what)
  return converted, list(converted)


def _insert(params: dict[str, Any], converted: dict[str, Any]) -> dict[str, Any]:
  """`params` (numpy) with the networks at 'g', 'd' or 'g/a2b' replaced by `converted`."""
  params = jax.tree.map(np.asarray, params)
  for where, tree in converted.items():
    side, _, sub = where.partition('/')
    if sub:
      params[side][sub] = tree
    else:
      params[side] = tree
  return params


def convert_params(
  config: ml_collections.ConfigDict, files: dict[str, str], template: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
  """Official files by role -> (params shaped like `template` with the given networks replaced,
  the networks replaced)."""
  state_dicts, _, flags = load_files(config, files)
  converted, replaced = convert_state_dicts(config, state_dicts, template, flags)
  return _insert(template, converted), replaced


def class_names_for(
  config: ml_collections.ConfigDict, class_names: list[str] | None, preset: str | None
) -> tuple[list[str], str]:
  """The class names (--class_names, else --preset, else the model's default preset) -> (names,
  where they came from, for the messages)."""
  if class_names:
    return list(class_names), f'--class_names ({len(class_names)} names)'
  conditional = registry.get(config.model).family == 'conditional'
  if preset is not None and not conditional:
    raise errors.BadInput(f'--preset is for class-conditional models, not {config.model}: drop it')
  if preset is None:
    preset = converters.DEFAULT_ORDER.get(config.model)
    if preset is None:
      if conditional:
        raise errors.BadInput(
          '--class_names or --preset is required: the official checkpoint does not record '
          f'the class names (presets: {sorted(converters.CLASS_ORDERS)})'
        )
      return list(converters.DOMAIN_NAMES.get(config.model, ('A', 'B'))), 'the two domains'
    source = f'the default --preset {preset}'
  else:
    source = f'--preset {preset}'
  if preset not in converters.CLASS_ORDERS:
    raise errors.BadInput(
      f'--preset {preset} is unknown; use one of {sorted(converters.CLASS_ORDERS)} or give '
      '--class_names'
    )
  names = list(converters.CLASS_ORDERS[preset])
  return names, f'{source} ({len(names)} names)'


def _check_class_count(held: int | None, names: list[str], source: str, flags) -> None:
  """A one-line error when the weights hold another number of classes than the names give."""
  if held is None or held == len(names):
    return
  fits = [p for p, order in converters.CLASS_ORDERS.items() if len(order) == held]
  hint = f'--preset {fits[0]} or ' if fits else ''
  raise errors.BadInput(
    f'{source} gives {len(names)} classes but the weights ({", ".join(flags.values())}) hold '
    f'{held}: give {hint}--class_names with {held} names in the official label order'
  )


def convert_ema(
  config: ml_collections.ConfigDict,
  ema: dict[str, converters.StateDict],
  template: Any,
  flag: str = '--ema_checkpoint',
) -> dict[str, Any]:
  """The EMA file's state dicts by role -> {'ema/<network>': converted}, for the networks that
  live in params['g'] (our EMA copy of it; `template` is the EMA's shapes)."""
  if not ema:
    return {}
  if not jax.tree.leaves(template):
    raise errors.BadInput(
      f'the config keeps no EMA copy of G (ema_decay {config.ema_decay}): drop {flag} or set '
      '--config.ema_decay'
    )
  converted = {}
  for where, (role, prefix_of, skip) in _converter(config)(config).items():
    side, _, sub = where.partition('/')
    if role in ema and side == 'g':
      what = f'{flag} [{role!r}]'
      converted[f'ema/{sub}'] = converters.convert_tree(
        ema[role], template[sub], prefix_of, skip, what
      )
  return converted


def prepare(
  config: ml_collections.ConfigDict,
  files: dict[str, str],
  class_names: list[str] | None,
  preset: str | None = None,
) -> tuple[ml_collections.ConfigDict, list[str], dict[str, Any]]:
  """Every check and the conversion, before anything is written -> (the completed config, the
  class names, the converted networks by where they go: 'g', 'g/a2b', 'd', ... in the params,
  'ema/<network>' in the EMA copy of params['g'])."""
  config = registry.complete(config)
  converter = _converter(config)
  names, source = class_names_for(config, class_names, preset)
  state_dicts, ema, flags = load_files(config, files)
  check = converters.CHECKS.get(converter)
  if check is not None:
    _check_class_count(check(config, state_dicts, flags), names, source, flags)
  objective = registry.build(config, len(names))
  shapes = jax.eval_shape(functools.partial(state_lib.init_state, objective, config))
  converted, _ = convert_state_dicts(config, state_dicts, shapes.params, flags)
  converted.update(convert_ema(config, ema, shapes.ema_params))
  return config, names, converted


def _write_run(config, names, workdir: str, converted: dict[str, Any], step: int, meta) -> None:
  """restore.write_run with the converted params, and the EMA copy of params['g'] from the
  'ema/' networks where given (the rest of it equals the params, as write_run makes it)."""
  ema = {k.partition('/')[2]: v for k, v in converted.items() if k.startswith('ema/')}
  params = {k: v for k, v in converted.items() if not k.startswith('ema/')}
  set_ema = (lambda g: {**g, **ema}) if ema else None
  restore_lib.write_run(
    config, names, workdir, lambda p: _insert(p, params), step, meta, set_ema=set_ema
  )


def import_run(
  config: ml_collections.ConfigDict,
  files: dict[str, str],
  class_names: list[str] | None,
  workdir: str,
  step: int = 0,
  preset: str | None = None,
) -> list[str]:
  """Writes a run directory whose checkpoint holds the converted weights; -> networks replaced.

  `files`: official files by flag ('generator', ..., or 'checkpoint', 'ema_checkpoint'). Nothing
  is written until every check passed; a failure while writing removes what this call created."""
  config, names, converted = prepare(config, files, class_names, preset)
  meta = {
    'imported': {
      'files': {k: os.path.abspath(v) for k, v in files.items()},
      'converted': list(converted),
      'source': config.model,
    }
  }
  before = set(os.listdir(workdir)) if os.path.isdir(workdir) else None
  try:
    _write_run(config, names, workdir, converted, step, meta)
  except BaseException:
    if before is None:
      shutil.rmtree(workdir, ignore_errors=True)
    elif os.path.isdir(workdir):
      for name in set(os.listdir(workdir)) - before:
        path = os.path.join(workdir, name)
        if os.path.isdir(path):
          shutil.rmtree(path)
        else:
          os.remove(path)
    raise
  return list(converted)


def main(argv):
  """Command line: see the module docstring."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  files = {role: getattr(f, role) for role in ROLES + BUNDLE_FLAGS if getattr(f, role)}
  checkpointing.quiet_orbax_logging()
  replaced = import_run(f.config, files, f.class_names, f.workdir, f.step, f.preset)
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
  _flags.DEFINE_string(
    'checkpoint', None, '2CET-GAN: the official {step:06d}_model.ckpt (G, E and D in one file).'
  )
  _flags.DEFINE_string(
    'ema_checkpoint', None, '2CET-GAN: the official {step:06d}_model_s.ckpt (the EMA G and E).'
  )
  _flags.DEFINE_list(
    'class_names', None, 'Class names in the order of the official labels (overrides --preset).'
  )
  _flags.DEFINE_enum(
    'preset',
    None,
    sorted(converters.CLASS_ORDERS),
    "Official class order; default: the model's (stargan: celeba, sargan: sargan). "
    + '; '.join(f'{k}: {",".join(v)}' for k, v in converters.CLASS_ORDERS.items()),
  )
  _flags.DEFINE_integer('step', 0, 'Step number to record the imported weights at.')
  _flags.mark_flags_as_required(['config', 'workdir'])
  cli.run(main)
