"""Imports the official PyTorch checkpoints into a run directory that eval.py and edit read.

  python -m jaxpr_gan.convert --config configs/stargan.py --workdir workdirs/stargan_official \
      --generator 200000-G.ckpt --discriminator 200000-D.ckpt \
      --class_names Black_Hair,Blond_Hair,Brown_Hair,Male,Young

Sources, read by their official state-dict key names (torch is needed for reading only):
  stargan   yunjey/stargan: `{step}-G.ckpt` (Generator.main.*), `{step}-D.ckpt` (main.*,
            conv1, conv2)
  sargan    arbishakram/SARGAN: the generator (main.*, the SARB as main.9.*; the official
            module's unused second attention `att_func.*` is skipped)
  cyclegan  junyanz/pytorch-CycleGAN-and-pix2pix, norm='instance': `latest_net_G_A.pth` (resnet
            generator, model.*) and `latest_net_D_A.pth` (n_layers PatchGAN, model.*); G_A is our
            'a2b', G_B 'b2a'; D_A judges domain B (fakes of G_A), so it becomes our D 'b'.
Weights are matched to the network that the config builds, every tensor by name and shape; a key
that fits nowhere or a missing one is an error naming it. InstanceNorm running statistics are
dropped: the official code normalises with each image's own statistics at test time too.
The run gets a checkpoint at step 0 (or --step) holding the converted weights (the EMA copy of G
too, when the config keeps one; networks not given keep their random initialisation, as the
metadata records) and the class names, so eval.py and `python -m jaxpr_gan.edit` use it as a
trained run.
"""
import functools
import os
import re
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from jaxpr_gan import checkpointing
from jaxpr_gan import inference
from jaxpr_gan import objectives

StateDict = dict[str, np.ndarray]
_PARAM_TO_TORCH = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias'}
_RUNNING_STATS = ('running_mean', 'running_var', 'num_batches_tracked')


def load_state_dict(path: str) -> StateDict:
  """A PyTorch checkpoint file -> {official key: numpy array} (torch imported only here)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'checkpoint file not found: {path}')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('reading a PyTorch checkpoint needs torch: pip install torch') from e
  obj = torch.load(path, map_location='cpu', weights_only=True)
  for wrapper in ('state_dict', 'model'):  # checkpoints saved as {'state_dict': ...}
    if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
      obj = obj[wrapper]
  if not isinstance(obj, dict) or not all(hasattr(v, 'numpy') for v in obj.values()):
    raise ValueError(f'{path} is not a state dict (a dict of tensors)')
  # nn.DataParallel prefixes every key with 'module.'
  return {re.sub(r'^module\.', '', k): v.detach().cpu().numpy() for k, v in obj.items()}


def _stargan_generator_prefix(num_down: int, num_blocks: int, path: tuple[str, ...]) -> str:
  """Our module path in stargan.Generator -> the official `main.<i>` module (also SARGAN's)."""
  first_block = 3 + 3 * num_down
  first_up = first_block + num_blocks
  head, rest = path[0], path[1:]
  name, _, idx = head.rpartition('_')
  if head == 'to_rgb':
    return f'main.{first_up + 3 * num_down}'
  i = int(idx)
  if name == 'Conv':  # the 7x7 input conv, then the down-sampling convs
    return f'main.{3 * i}'
  if name == 'InstanceNorm':  # one after each conv and transposed conv, in order
    return f'main.{3 * i + 1}' if i <= num_down else f'main.{first_up + 3 * (i - num_down - 1) + 1}'
  if name == 'ConvTranspose':
    return f'main.{first_up + 3 * i}'
  block = f'main.{first_block + i}'
  if name == 'ResidualBlock':  # its own Sequential: conv, IN, ReLU, conv, IN
    order = {'Conv_0': 0, 'InstanceNorm_0': 1, 'Conv_1': 3, 'InstanceNorm_1': 4}
    return f'{block}.main.{order[rest[0]]}'
  if name == 'SARB':  # conv1/conv2/attention.<level> are ConvLayers: .conv2d and .norm.norm
    sub = 'att_func.out_block.0' if rest[:2] == ('attention', 'out') else (
        f'att_func.{rest[1]}' if rest[0] == 'attention' else rest[0])
    layer = 'conv2d' if rest[-1].startswith('Conv') else 'norm.norm'
    return f'{block}.{sub}.{layer}'
  raise KeyError(path)


def _stargan_discriminator_prefix(path: tuple[str, ...]) -> str:
  """stargan.Discriminator: trunk convs main.0, main.2, ... (LeakyReLU between); conv1, conv2."""
  heads = {'src_head': 'conv1', 'cls_head': 'conv2'}
  if path[0] in heads:
    return heads[path[0]]
  return f'main.{2 * int(path[0].rpartition("_")[2])}'


def _resnet_generator_prefix(num_down: int, num_blocks: int, dropout: bool,
                             path: tuple[str, ...]) -> str:
  """cyclegan.ResnetGenerator -> `model.<i>` (a ReflectionPad2d comes before each 7x7 conv)."""
  first_block = 4 + 3 * num_down
  first_up = first_block + num_blocks
  head = path[0]
  if head == 'to_rgb':
    return f'model.{first_up + 3 * num_down + 1}'
  name, _, idx = head.rpartition('_')
  i = int(idx)
  if name == 'Conv':
    return 'model.1' if i == 0 else f'model.{4 + 3 * (i - 1)}'
  if name == 'ConvTranspose':
    return f'model.{first_up + 3 * i}'
  if name == 'ResnetBlock':  # conv_block: pad, conv, IN, ReLU, [Dropout], pad, conv, IN
    second = 6 if dropout else 5
    return f'model.{first_block + i}.conv_block.{1 if path[1] == "Conv_0" else second}'
  raise KeyError(path)


def _patch_discriminator_prefix(num_layers: int, path: tuple[str, ...]) -> str:
  """cyclegan.PatchDiscriminator (NLayerDiscriminator) -> `model.<i>`."""
  if path[0] == 'head':
    return f'model.{2 + 3 * num_layers}'
  i = int(path[0].rpartition('_')[2])
  return 'model.0' if i == 0 else f'model.{2 + 3 * (i - 1)}'


def convert_tree(state_dict: StateDict, template: Any, prefix_of: Callable[[tuple], str],
                 skip: Callable[[str], bool] = lambda key: False, what: str = 'network') -> Any:
  """Fills `template` (our params or their shapes) from an official state dict.

  `prefix_of` maps our module path (the names above a leaf) to the official module's key prefix.
  Conv and transposed-conv weights are transposed from PyTorch's (O, I, kh, kw) / (I, O, kh, kw)
  to Flax's (kh, kw, I, O) / (kh, kw, O, I); InstanceNorm's weight is our scale.
  """
  used = set()

  def fill(path, leaf):
    names = tuple(k.key for k in path)
    key = f'{prefix_of(names[:-1])}.{_PARAM_TO_TORCH[names[-1]]}'
    if key not in state_dict:
      raise KeyError(f'{what}: the checkpoint has no {key!r} (for our {"/".join(names)}); it '
                     'was saved from another architecture or size than the config builds.')
    value = state_dict[key]
    if value.ndim == 4:
      value = value.transpose(2, 3, 1, 0)
    if value.shape != tuple(leaf.shape):
      raise ValueError(f'{what}: {key!r} has shape {value.shape} after conversion but the config '
                       f'builds {tuple(leaf.shape)} for {"/".join(names)}: check the filter '
                       'counts, number of blocks and number of classes in the config.')
    used.add(key)
    return np.asarray(value, np.float32)

  tree = jax.tree_util.tree_map_with_path(fill, template)
  left = sorted(k for k in state_dict if k not in used and not skip(k)
                and k.rpartition('.')[2] not in _RUNNING_STATS)
  if left:
    raise ValueError(f'{what}: {len(left)} checkpoint tensors fit no layer of the network the '
                     f'config builds (e.g. {left[:5]}): the config has fewer layers or blocks '
                     'than the checkpoint.')
  return tree


SOURCES = ('stargan', 'sargan', 'cyclegan')


def _converters(config: ml_collections.ConfigDict):
  """-> {our network: (official role, prefix function, skip)} for config.model."""
  g, d = config.generator, config.discriminator
  if config.model in ('stargan', 'sargan'):
    num_blocks = g.num_res if config.model == 'stargan' else g.num_blocks
    # SARGAN's Generator also owns an attention module that its forward pass never calls.
    skip_unused = lambda k: config.model == 'sargan' and k.startswith('att_func.')
    return {'g': ('generator', functools.partial(_stargan_generator_prefix, g.num_down,
                                                 num_blocks), skip_unused),
            'd': ('discriminator', _stargan_discriminator_prefix, lambda k: False)}
  if config.model == 'cyclegan':
    if g.architecture != 'resnet' or d.architecture != 'patch':
      raise ValueError('CycleGAN checkpoints convert for the resnet generator and the PatchGAN '
                       'discriminator (the official defaults): use configs/cyclegan.py:official.')
    gen = functools.partial(_resnet_generator_prefix, g.num_down, g.num_blocks, g.dropout > 0)
    disc = functools.partial(_patch_discriminator_prefix, d.num_layers)
    return {'g/a2b': ('generator', gen, lambda k: False),
            'g/b2a': ('generator_b', gen, lambda k: False),
            'd/b': ('discriminator', disc, lambda k: False),
            'd/a': ('discriminator_b', disc, lambda k: False)}
  raise ValueError(f'no official checkpoint converter for model {config.model!r}; '
                   f'converters exist for {SOURCES}.')


def convert_params(config: ml_collections.ConfigDict, files: dict[str, str],
                   template: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
  """Official files by role ('generator', 'discriminator', 'generator_b', 'discriminator_b')
  -> (params shaped like `template` with the given networks replaced, the networks replaced)."""
  converters = _converters(config)
  roles = {role for role, _, _ in converters.values()}
  unknown = sorted(set(files) - roles)
  if unknown:
    raise ValueError(f'{config.model} checkpoints have the roles {sorted(roles)}, not {unknown}')
  if 'generator' not in files:
    raise ValueError('the generator checkpoint is required')
  params = jax.tree.map(np.asarray, template)
  replaced = []
  for where, (role, prefix_of, skip) in converters.items():
    if role not in files:
      continue
    side, _, sub = where.partition('/')
    target = params[side][sub] if sub else params[side]
    converted = convert_tree(load_state_dict(files[role]), target, prefix_of, skip,
                             what=f'{role} ({files[role]})')
    if sub:
      params[side][sub] = converted
    else:
      params[side] = converted
    replaced.append(where)
  return params, replaced


def import_run(config: ml_collections.ConfigDict, files: dict[str, str], class_names: list[str],
               workdir: str, step: int = 0) -> list[str]:
  """Writes a run directory whose checkpoint holds the converted weights; -> networks replaced."""
  if config.model in objectives.CONDITIONAL_MODELS and not class_names:
    raise ValueError('--class_names is required: the official checkpoint does not record them '
                     '(e.g. Black_Hair,Blond_Hair,Brown_Hair,Male,Young for StarGAN on CelebA)')
  class_names = list(class_names) or ['A', 'B']
  replaced = []

  def set_params(template):
    params, done = convert_params(config, files, template)
    replaced.extend(done)
    return params

  meta = {'imported': {'files': {k: os.path.abspath(v) for k, v in files.items()},
                       'converted': replaced, 'source': config.model}}
  inference.write_run(config, class_names, workdir, set_params, step, meta)
  return replaced

def main(argv):
  """Command line: see the module docstring."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  files = {role: getattr(f, role) for role in
           ('generator', 'discriminator', 'generator_b', 'discriminator_b') if getattr(f, role)}
  checkpointing.quiet_orbax_logging()
  replaced = import_run(f.config, files, f.class_names or [], f.workdir, f.step)
  print(f'imported {", ".join(replaced)} into {f.workdir} (step {f.step}); evaluate with\n'
        f'  python eval.py --config ... --workdir {f.workdir}\nor edit a photo with\n'
        f'  python -m jaxpr_gan.edit --model {f.workdir} --input photo.jpg ...')


if __name__ == '__main__':
  from absl import app as _app  # pylint: disable=g-import-not-at-top
  from absl import flags as _flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config', None, 'Config that builds the official network '
                                  '(e.g. configs/stargan.py).', lock_config=True)
  _flags.DEFINE_string('workdir', None, 'New run directory to write.')
  _flags.DEFINE_string('generator', None, 'Official G checkpoint (CycleGAN: G_A, A -> B).')
  _flags.DEFINE_string('discriminator', None, 'Official D checkpoint (CycleGAN: D_A).')
  _flags.DEFINE_string('generator_b', None, 'CycleGAN only: G_B (B -> A).')
  _flags.DEFINE_string('discriminator_b', None, 'CycleGAN only: D_B.')
  _flags.DEFINE_list('class_names', None, 'Class names in the order of the official labels.')
  _flags.DEFINE_integer('step', 0, 'Step number to record the imported weights at.')
  _flags.mark_flags_as_required(['config', 'workdir', 'generator'])
  _app.run(main)
