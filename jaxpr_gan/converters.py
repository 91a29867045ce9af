"""Official PyTorch checkpoints' key names for our networks: what `tools/convert` reads.

For each model with a converter (`registry.Model.converter`): which official file feeds which of
our networks, and, for every module of ours, the official module's key prefix:
  stargan   yunjey/stargan: `{step}-G.ckpt` (Generator.main.*), `{step}-D.ckpt` (main.*,
            conv1, conv2)
  sargan    arbishakram/SARGAN: the generator (main.*, the SARB as main.9.*; the official
            module's unused second attention `att_func.*` is skipped)
  cyclegan  junyanz/pytorch-CycleGAN-and-pix2pix, norm='instance': `latest_net_G_A.pth` (resnet
            generator, model.*) and `latest_net_D_A.pth` (n_layers PatchGAN, model.*); G_A is our
            'a2b', G_B 'b2a'; D_A judges domain B (fakes of G_A), so it becomes our D 'b'.
  twocet    xiaohanghu/2CET-GAN: one file `{step:06d}_model.ckpt`, a dict of the state dicts
            'generator' (from_rgb, encode.<i>, decode.<i>, to_rgb.0/.2), 'encoder' (its
            EncoderBlk as shared.shared.<i>, the Linear unshared.0) and 'discriminator'
            (main.0.shared.<i>, the 1x1 conv main.1); `{step:06d}_model_s.ckpt` holds the EMA
            ('stable') generator and encoder, our EMA copy of params['g'] (`BUNDLES`).
Weights are matched to the network that the config builds, every tensor by name and shape; a key
that fits nowhere or a missing one is an error naming it. InstanceNorm running statistics are
dropped: the official code normalises with each image's own statistics at test time too.
Linear weights (out, in) become our Dense kernels (in, out).
The official checkpoints do not record their class names: `CLASS_ORDERS` holds the official label
orders (`--preset`), `DEFAULT_ORDER` each model's default, and `CHECKS` what the weights fix (the
number of classes, StarGAN's image size), checked before anything is written.
"""

from collections.abc import Callable
import functools
import math
import re
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxpr_gan import errors

StateDict = dict[str, np.ndarray]
# Our network (a path into the params, 'g' or 'g/a2b') -> (official role, prefix_of, skip).
Converters = dict[str, tuple[str, Callable[[tuple], str], Callable[[str], bool]]]
_PARAM_TO_TORCH = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias'}
_RUNNING_STATS = ('running_mean', 'running_var', 'num_batches_tracked')
_NONE = lambda key: False

# The class names in the order of the official label vector, by preset name (`--preset`).
CLASS_ORDERS = {
  # yunjey/stargan main.py: the default --selected_attrs (c_dim 5)
  'celeba': ('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Male', 'Young'),
  # yunjey/stargan on RaFD (c_dim 8): ImageFolder sorts the expression folders alphabetically
  'rafd': ('angry', 'contemptuous', 'disgusted', 'fearful', 'happy', 'neutral', 'sad', 'surprised'),
  # arbishakram/SARGAN: AFS, ANS, DIS, HAS, NES, SAS, SUS
  'sargan': ('afraid', 'angry', 'disgusted', 'happy', 'neutral', 'sad', 'surprised'),
}
DEFAULT_ORDER = {'stargan': 'celeba', 'sargan': 'sargan'}  # config.model -> preset
# The class names of an imported run of a model without class labels (default: 'A', 'B').
DOMAIN_NAMES = {'twocet': ('neutral', 'emotional')}  # 2CET-GAN's D heads 0 and 1


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
    sub = (
      'att_func.out_block.0'
      if rest[:2] == ('attention', 'out')
      else (f'att_func.{rest[1]}' if rest[0] == 'attention' else rest[0])
    )
    layer = 'conv2d' if rest[-1].startswith('Conv') else 'norm.norm'
    return f'{block}.{sub}.{layer}'
  raise KeyError(path)


def _stargan_discriminator_prefix(path: tuple[str, ...]) -> str:
  """stargan.Discriminator: trunk convs main.0, main.2, ... (LeakyReLU between); conv1, conv2."""
  heads = {'src_head': 'conv1', 'cls_head': 'conv2'}
  if path[0] in heads:
    return heads[path[0]]
  return f'main.{2 * int(path[0].rpartition("_")[2])}'


def _resnet_generator_prefix(
  num_down: int, num_blocks: int, dropout: bool, path: tuple[str, ...]
) -> str:
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


def _numbered(path: tuple[str, ...]) -> str:
  """('encode_2', 'norm1', 'fc') -> 'encode.2.norm1.fc': our list-like names to ModuleList keys."""
  return '.'.join(re.sub(r'_(\d+)$', r'.\1', name) for name in path)


def _twocet_generator_prefix(path: tuple[str, ...]) -> str:
  """twocet.Generator: from_rgb, encode.<i>, decode.<i> (ModuleLists), to_rgb.0 (IN), .2 (conv)."""
  if path[0] == 'to_rgb':
    return {'norm': 'to_rgb.0', 'conv': 'to_rgb.2'}[path[1]]
  return _numbered(path)


def _twocet_trunk_prefix(image_size: int, path: tuple[str, ...]) -> str:
  """twocet.EncoderTrunk -> the official EncoderBlk's Sequential `shared.<i>`: the 3x3 conv, one
  ResBlk per halving (log2(size) - 2), a LeakyReLU, the 4x4 conv (then another LeakyReLU)."""
  head, rest = path[0], path[1:]
  if head == 'from_rgb':
    return 'shared.0'
  if head == 'conv_out':
    return f'shared.{int(math.log2(image_size))}'
  return '.'.join((f'shared.{1 + int(head.rpartition("_")[2])}', *rest))


def _twocet_encoder_prefix(image_size: int, path: tuple[str, ...]) -> str:
  """twocet.Encoder: trunk -> shared.<EncoderBlk>, head -> the Linear unshared.0."""
  if path[0] == 'head':
    return 'unshared.0'
  return f'shared.{_twocet_trunk_prefix(image_size, path[1:])}'


def _twocet_discriminator_prefix(image_size: int, path: tuple[str, ...]) -> str:
  """twocet.Discriminator: main = Sequential(EncoderBlk, the 1x1 conv to the domain logits)."""
  if path[0] == 'head':
    return 'main.1'
  return f'main.0.{_twocet_trunk_prefix(image_size, path[1:])}'


def describe(state_dict: StateDict) -> str:
  """A guess at which official network a state dict holds, for the error messages."""
  for key, what in (
    ('to_rgb.2.weight', 'a 2CET-GAN generator'),
    ('unshared.0.weight', 'a 2CET-GAN encoder'),
    ('main.0.shared.0.weight', 'a 2CET-GAN discriminator'),
  ):
    if key in state_dict:
      return what
  first = state_dict.get('main.0.weight')
  if 'conv1.weight' in state_dict and 'conv2.weight' in state_dict:
    return 'a StarGAN/SARGAN discriminator'
  if first is not None and first.ndim == 4 and first.shape[-1] == 7:
    sargan = any(k.startswith('att_func.') for k in state_dict)
    return 'a SARGAN generator' if sargan else 'a StarGAN generator'
  resnet = state_dict.get('model.1.weight')
  if resnet is not None and resnet.ndim == 4 and resnet.shape[-1] == 7:
    return 'a CycleGAN resnet generator'
  if 'model.0.weight' in state_dict:
    return 'a CycleGAN PatchGAN discriminator'
  return 'a network of none of the converted models'


def convert_tree(
  state_dict: StateDict,
  template: Any,
  prefix_of: Callable[[tuple], str],
  skip: Callable[[str], bool] = _NONE,
  what: str = 'network',
) -> Any:
  """Fills `template` (our params or their shapes) from an official state dict.

  `prefix_of` maps our module path (the names above a leaf) to the official module's key prefix.
  Conv and transposed-conv weights are transposed from PyTorch's (O, I, kh, kw) / (I, O, kh, kw)
  to Flax's (kh, kw, I, O) / (kh, kw, O, I), Linear weights from (out, in) to Dense's (in, out);
  InstanceNorm's weight is our scale.
  """
  used = set()

  def fill(path, leaf):
    names = tuple(k.key for k in path)
    key = f'{prefix_of(names[:-1])}.{_PARAM_TO_TORCH[names[-1]]}'
    if key not in state_dict:
      raise errors.BadInput(
        f'{what}: the checkpoint has no {key!r} (for our {"/".join(names)}); it holds '
        f'{describe(state_dict)} of another architecture or size than the config builds: give '
        'the matching file, or a --config (and --config.generator.*) that builds its network'
      )
    value = state_dict[key]
    if value.ndim == 4:
      value = value.transpose(2, 3, 1, 0)
    elif value.ndim == 2:
      value = value.T
    if value.shape != tuple(leaf.shape):
      raise errors.BadInput(
        f'{what}: {key!r} has shape {value.shape} after conversion but the config '
        f'builds {tuple(leaf.shape)} for {"/".join(names)}: it holds {describe(state_dict)} '
        'of another size; set the filter counts on the command line (--config.generator.* '
        'or --config.discriminator.*, e.g. conv_dim)'
      )
    used.add(key)
    return np.asarray(value, np.float32)

  tree = jax.tree_util.tree_map_with_path(fill, template)
  left = sorted(
    k
    for k in state_dict
    if k not in used and not skip(k) and k.rpartition('.')[2] not in _RUNNING_STATS
  )
  if left:
    raise errors.BadInput(
      f'{what}: {len(left)} checkpoint tensors fit no layer of the network the '
      f'config builds (e.g. {left[:5]}): the config has fewer layers or blocks '
      'than the checkpoint; set them on the command line (e.g. --config.generator.num_blocks)'
    )
  return tree


def stargan(config: ml_collections.ConfigDict) -> Converters:
  """yunjey/stargan's G and D (and SARGAN's G, whose SARBs sit where StarGAN's blocks do)."""
  g = config.generator
  # SARGAN's Generator also owns an attention module that its forward pass never calls.
  skip_unused = lambda k: g.block == 'sarb' and k.startswith('att_func.')
  return {
    'g': (
      'generator',
      functools.partial(_stargan_generator_prefix, g.num_down, g.num_blocks),
      skip_unused,
    ),
    'd': ('discriminator', _stargan_discriminator_prefix, _NONE),
  }


def cyclegan(config: ml_collections.ConfigDict) -> Converters:
  """The CycleGAN code's resnet generators and n-layer PatchGANs (its defaults)."""
  g, d = config.generator, config.discriminator
  if g.architecture != 'resnet' or d.architecture != 'patch':
    raise errors.BadInput(
      'CycleGAN checkpoints convert for the resnet generator and the PatchGAN '
      'discriminator (the official defaults): use configs/cyclegan.py:official.'
    )
  gen = functools.partial(_resnet_generator_prefix, g.num_down, g.num_blocks, g.dropout > 0)
  disc = functools.partial(_patch_discriminator_prefix, d.num_layers)
  return {
    'g/a2b': ('generator', gen, _NONE),
    'g/b2a': ('generator_b', gen, _NONE),
    'd/b': ('discriminator', disc, _NONE),
    'd/a': ('discriminator_b', disc, _NONE),
  }


def twocet(config: ml_collections.ConfigDict) -> Converters:
  """xiaohanghu/2CET-GAN's Generator, Encoder and Discriminator (roles: their names in the file)."""
  size = config.data.image_size
  return {
    'g/generator': ('generator', _twocet_generator_prefix, _NONE),
    'g/encoder': ('encoder', functools.partial(_twocet_encoder_prefix, size), _NONE),
    'd': ('discriminator', functools.partial(_twocet_discriminator_prefix, size), _NONE),
  }


# Models whose official checkpoint is one file of several networks: converter -> {flag of
# tools/convert: the networks (roles) that file's dict holds, by their names there}. The
# 'ema_checkpoint' networks go to our EMA copy of params['g'].
BUNDLES = {
  twocet: {
    'checkpoint': ('generator', 'encoder', 'discriminator'),
    'ema_checkpoint': ('generator', 'encoder'),
  }
}


def check_stargan(
  config: ml_collections.ConfigDict, state_dicts: dict[str, StateDict], flags: dict[str, str]
) -> int:
  """What the official StarGAN/SARGAN weights fix, checked against `config`: each file holds the
  network of its role (`flags`: role -> '--generator FILE' for the messages), D's image size
  (its conv2 kernel = image_size / 2**repeat_num) and depth are the config's -> the number of
  classes (G's first conv takes 3 + c channels; D's conv2 has c outputs)."""
  counts = {}
  if 'generator' in state_dicts:
    g = state_dicts['generator']
    if describe(g) not in ('a StarGAN generator', 'a SARGAN generator'):
      raise errors.BadInput(
        f'{flags["generator"]} holds {describe(g)}, not a StarGAN/SARGAN generator: give the '
        'official G file (e.g. 200000-G.ckpt) as --generator'
      )
    counts['generator'] = g['main.0.weight'].shape[1] - 3
  if 'discriminator' in state_dicts:
    d = state_dicts['discriminator']
    if 'conv1.weight' not in d or 'conv2.weight' not in d:
      raise errors.BadInput(
        f'{flags["discriminator"]} holds {describe(d)}, not a StarGAN/SARGAN discriminator: '
        'give the official D file (e.g. 200000-D.ckpt) as --discriminator'
      )
    cls = d['conv2.weight']  # (c, channels, k, k), k = image_size / 2**repeat_num
    repeat = sum(1 for k in d if re.fullmatch(r'main\.\d+\.weight', k))
    size = cls.shape[-1] * 2**repeat
    want = (config.data.image_size, config.discriminator.repeat_num)
    if (size, repeat) != want:
      fix = [f'--config.data.image_size={size}'] if size != want[0] else []
      fix += [f'--config.discriminator.repeat_num={repeat}'] if repeat != want[1] else []
      raise errors.BadInput(
        f'{flags["discriminator"]} was trained on {size} px images with repeat_num {repeat} (its '
        f'conv2 kernel is {cls.shape[-1]} after {repeat} halvings) but the config builds '
        f'{want[0]} px with {want[1]}: add {" ".join(fix)}'
      )
    counts['discriminator'] = cls.shape[0]
  if len(set(counts.values())) > 1:
    raise errors.BadInput(
      f'{flags["generator"]} holds {counts["generator"]} classes but '
      f'{flags["discriminator"]} {counts["discriminator"]}: give the G and D of one run'
    )
  return next(iter(counts.values()), None)


def check_twocet(
  config: ml_collections.ConfigDict, state_dicts: dict[str, StateDict], flags: dict[str, str]
) -> None:
  """What 2CET-GAN's encoder fixes, checked against `config`: the image size (its trunk has
  log2(size) - 2 ResBlks), the grayscale input (its first conv's channels), the code size."""
  e = state_dicts.get('encoder')
  if e is None:
    return None
  if describe(e) != 'a 2CET-GAN encoder' or 'shared.shared.0.weight' not in e:
    raise errors.BadInput(f'{flags["encoder"]} holds {describe(e)}, not a 2CET-GAN encoder')
  blocks = {k.split('.')[2] for k in e if re.fullmatch(r'shared\.shared\.\d+\.conv1\.weight', k)}
  held = {
    'data.image_size': 2 ** (len(blocks) + 2),
    'encoder.grayscale': e['shared.shared.0.weight'].shape[1] == 1,
    'generator.code_dim': e['unshared.0.weight'].shape[0],
  }
  fix = [f'--config.{k}={v}' for k, v in held.items() if config[k] != v]
  if fix:
    raise errors.BadInput(
      f'{flags["encoder"]} holds a network for other settings than the config: add {" ".join(fix)}'
    )
  return None


# Checks of the weights before any is converted: converter -> check(config, state dicts, flags),
# which returns the number of classes the weights hold (None where they do not fix it).
CHECKS = {stargan: check_stargan, twocet: check_twocet}
