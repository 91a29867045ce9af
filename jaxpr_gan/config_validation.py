"""Config checks run before anything is compiled.

A mistyped key, a wrong type or an impossible size otherwise surfaces as an AttributeError or a
shape error deep inside tracing, or is silently ignored; here each stops the run at once with a
ConfigError naming the key (dotted path), its value and what to change.
"""
import difflib
import os
from typing import Any, Sequence

import ml_collections

from configs import cyclegan
from configs import dcam
from configs import mmagan
from configs import sargan
from configs import stargan
from configs import twocet
from input_pipeline import folders
from input_pipeline import groups
from input_pipeline import pipeline
from input_pipeline import sources
from input_pipeline import synthetic
from jaxpr_gan import losses
from jaxpr_gan.models import vgg
from jaxpr_gan.objectives import contextual

# Reference configs: a run's keys and types must be those of get_config('') of its model.
REFERENCE_CONFIGS = {'stargan': stargan, 'sargan': sargan, 'mmagan': mmagan,
                     'cyclegan': cyclegan, 'twocet': twocet, 'dcam': dcam}
# The data grouping each model reads (input_pipeline.pipeline.GROUPINGS).
MODEL_GROUPS = {'cyclegan': 'domains', 'twocet': 'neutral_emotional'}
DATA_SOURCES = pipeline.SOURCES
GENERATOR_BLOCKS = ('residual', 'sarb', 'mmarm')
# MMARM (depth 2) and the SARB hourglass (depth 2) halve the bottleneck twice.
MIN_ATTENTION_BOTTLENECK = 4


class ConfigError(ValueError):
  """A config that cannot run; the message names the key, its value and the fix."""


def _get(config: ml_collections.ConfigDict, key: str) -> Any:
  for part in key.split('.'):
    config = config[part]
  return config


def _require(ok: bool, config: ml_collections.ConfigDict, key: str, why: str) -> None:
  if not ok:
    raise ConfigError(f'config.{key} = {_get(config, key)!r} {why}.')


def _type_ok(value: Any, ref: Any) -> bool:
  """value may stand where ref stands: an int for a float, a list for a tuple; no bool for int."""
  if ref is None:
    return True
  if isinstance(ref, bool) or isinstance(value, bool):
    return isinstance(value, bool) and isinstance(ref, bool)
  if isinstance(ref, float):
    return isinstance(value, (int, float))
  if isinstance(ref, (tuple, list)):
    return isinstance(value, (tuple, list)) and (not ref or all(_type_ok(v, ref[0]) for v in value))
  return isinstance(value, type(ref))


def _type_name(ref: Any) -> str:
  if isinstance(ref, float):
    return 'float (or int)'
  if isinstance(ref, (tuple, list)):
    return f'sequence of {_type_name(ref[0])}' if ref else 'sequence'
  return type(ref).__name__


def _check_keys(config: Any, ref: ml_collections.ConfigDict, model: str, prefix: str = '') -> None:
  """Every key of config must be in ref with a compatible type, and none of ref's may be missing."""
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f'config.{prefix[:-1]} = {config!r} is a {type(config).__name__}; expected '
                      f'a group of keys as in configs/{model}.py.')
  for key in config.keys():
    value = config[key]
    if key not in ref:
      close = difflib.get_close_matches(key, list(ref.keys()), n=1)
      hint = f'did you mean config.{prefix}{close[0]}?' if close else f'known: {sorted(ref.keys())}'
      raise ConfigError(f'unknown key config.{prefix}{key} = {value!r} for model {model!r}; {hint}')
    if isinstance(ref[key], ml_collections.ConfigDict):
      _check_keys(value, ref[key], model, f'{prefix}{key}.')
    elif not _type_ok(value, ref[key]):
      raise ConfigError(f'config.{prefix}{key} = {value!r} is a {type(value).__name__}; expected '
                        f'a {_type_name(ref[key])} as in configs/{model}.py.')
  missing = sorted(set(ref.keys()) - set(config.keys()))
  if missing:
    raise ConfigError(f'config.{prefix}{missing[0]} is missing (model {model!r}); add it as in '
                      f'configs/{model}.py.')


def _check_cyclegan(config: ml_collections.ConfigDict) -> None:
  """Known architectures and a size that every down-sampling of G and D can take."""
  g, d, size = config.generator, config.discriminator, config.data.image_size
  _require(size > 0, config, 'data.image_size', 'must be > 0')
  _require(g.architecture in ('resnet', 'unet'), config, 'generator.architecture',
           "is unknown; use 'resnet' or 'unet'")
  _require(d.architecture in ('basic', 'patch'), config, 'discriminator.architecture',
           "is unknown; use 'basic' (the paper's) or 'patch' (70x70 PatchGAN)")
  _require(config.loss.adversarial in losses.ADVERSARIAL_KINDS, config, 'loss.adversarial',
           f'is unknown; use one of {losses.ADVERSARIAL_KINDS}')
  _require(config.loss.pool_size >= 0, config, 'loss.pool_size', 'must be >= 0 (0: no pool)')
  _require(0 <= g.dropout < 1, config, 'generator.dropout', 'must be in [0, 1)')
  if g.architecture == 'resnet':
    _require(size % 2 ** g.num_down == 0, config, 'data.image_size',
             f'is not divisible by 2**generator.num_down = {2 ** g.num_down}')
  else:
    _require(g.unet_num_downs >= 5 and size % 2 ** g.unet_num_downs == 0, config,
             'generator.unet_num_downs', f'must be >= 5 (the U-Net has 5 fixed levels) with '
             f'data.image_size ({size}) divisible by 2**unet_num_downs; log2(image_size) goes '
             'down to 1x1')
  if d.architecture == 'basic':
    _require(size % 16 == 0, config, 'data.image_size',
             "is not a multiple of 16, which the 'basic' discriminator (strides 2, 2, 4) needs")
  else:
    least = 3 * 2 ** d.num_layers
    _require(size >= least and size % 2 ** d.num_layers == 0, config, 'data.image_size',
             f'is too small for a PatchGAN with discriminator.num_layers = {d.num_layers}: use a '
             f'multiple of {2 ** d.num_layers} of at least {least}')


def _check_twocet(config: ml_collections.ConfigDict) -> None:
  size = config.data.image_size
  _require(size >= 16 and size & (size - 1) == 0, config, 'data.image_size',
           'is not a power of two >= 16, which the encoder and discriminator trunks (halving '
           'down to a 4x4 map) need')
  lo, hi = config.loss.code_range
  _require(lo < hi, config, 'loss.code_range', 'must be (low, high) with low < high')
  _require(config.generator.code_dim > 0, config, 'generator.code_dim', 'must be > 0')


def _check_dcam(config: ml_collections.ConfigDict) -> None:
  """The contextual loss: a known feature network and layers (its weights file is checked when
  a fresh run reads it, so a resumed run does not need it)."""
  loss, g = config.loss, config.generator
  _require(loss.cx_network in contextual.FEATURE_NETWORKS, config, 'loss.cx_network',
           f'is unknown; use one of {contextual.FEATURE_NETWORKS}')
  _require(bool(loss.cx_layers) and all(l in vgg.LAYER_NAMES for l in loss.cx_layers), config,
           'loss.cx_layers', f'must name VGG19 layers, e.g. relu3_2; known: {vgg.LAYER_NAMES}')
  _require(loss.lambda_cx >= 0, config, 'loss.lambda_cx', 'must be >= 0 (0: no contextual loss)')
  _require(loss.cx_bandwidth > 0, config, 'loss.cx_bandwidth', 'must be > 0')
  _require(g.mapping_layers >= 1, config, 'generator.mapping_layers', 'must be >= 1')


def _check_sizes(config: ml_collections.ConfigDict) -> None:
  """The image must survive D's repeat_num and G's num_down halvings (and G's attention)."""
  if config.model == 'cyclegan':
    return _check_cyclegan(config)
  if config.model == 'twocet':
    return _check_twocet(config)
  size, repeat, down = (config.data.image_size, config.discriminator.repeat_num,
                        config.generator.num_down)
  _require(size > 0, config, 'data.image_size', 'must be > 0')
  _require(repeat > 0, config, 'discriminator.repeat_num', 'must be > 0')
  _require(down >= 0, config, 'generator.num_down', 'must be >= 0')
  _require(size % 2 ** repeat == 0, config, 'data.image_size',
           f'is not divisible by 2**discriminator.repeat_num = {2 ** repeat} (D halves it '
           f'{repeat} times); use a multiple of {2 ** repeat} or lower discriminator.repeat_num')
  _require(size % 2 ** down == 0, config, 'data.image_size',
           f'is not divisible by 2**generator.num_down = {2 ** down} (G must return the input '
           f'size); use a multiple of {2 ** down} or lower generator.num_down')
  block = config.generator.get('block', 'residual')
  _require(block in GENERATOR_BLOCKS, config, 'generator.block', f'is unknown; use one of '
           f'{GENERATOR_BLOCKS}')
  if block in ('sarb', 'mmarm'):
    _require(size // 2 ** down >= MIN_ATTENTION_BOTTLENECK, config, 'data.image_size',
             f'leaves a {size // 2 ** down} px bottleneck after generator.num_down = {down} '
             f'halvings, but a {block!r} block needs at least {MIN_ATTENTION_BOTTLENECK} px; use '
             f'data.image_size >= {MIN_ATTENTION_BOTTLENECK * 2 ** down} or lower '
             'generator.num_down')


def _check_labelled_source(config: ml_collections.ConfigDict) -> None:
  """The files and keys that the csv, attributes, filename and tfds sources need."""
  data = config.data
  _require(data.split in sources.SPLITS, config, 'data.split', f'is unknown; use one of '
           f'{sources.SPLITS}')
  _require(data.on_error in sources.ON_ERROR, config, 'data.on_error',
           f'is unknown; use one of {sources.ON_ERROR}')
  if data.split in ('fraction', 'identity'):
    _require(0 < data.test_fraction < 1, config, 'data.test_fraction', 'must be in (0, 1)')
  if data.split == 'file':
    _require(os.path.isfile(data.split_file), config, 'data.split_file', 'is not a file')
  is_file = lambda key, what: _require(bool(data[key]) and os.path.isfile(data[key]), config,
                                       f'data.{key}', f'is not a file; set it to {what}')
  is_dir = lambda key, what: _require(bool(data[key]) and os.path.isdir(data[key]), config,
                                      f'data.{key}', f'is not a directory; set it to {what}')
  if data.source == 'csv':
    is_file('csv', 'a CSV with the header path,label[,intensity][,split][,identity]')
    if data.split == 'folders':
      is_file('test_csv', "the test split's CSV (or use --config.data.split=column/fraction)")
  elif data.source == 'attributes':
    is_file('attribute_file', "a CelebA-style attribute file (list_attr_celeba.txt)")
    is_dir('image_dir', 'the folder of the images the attribute file names')
    _require(len(data.attributes) > 0, config, 'data.attributes',
             "is empty; name the attributes to train on, e.g. ('Black_Hair', 'Blond_Hair')")
  elif data.source == 'filename':
    is_dir('root', 'the folder of the images (searched recursively)')
    if data.split == 'folders':
      is_dir('test_root', "the test images' folder (or use --config.data.split=identity)")
  elif data.source == 'tfds':
    _require(bool(data.tfds_name), config, 'data.tfds_name', 'is empty; name the prepared TFDS '
             'data set')


def _check_data(config: ml_collections.ConfigDict, class_names: Sequence[str] | None) -> None:
  """A known source, existing folders, and a class count that matches the data's classes."""
  data = config.data
  _require(data.source in DATA_SOURCES, config, 'data.source', f'is unknown; use one of '
           f'{DATA_SOURCES}')
  if data.source == 'synthetic':
    n = len(synthetic.EXPRESSIONS)
    _require(2 <= data.num_classes <= n, config, 'data.num_classes',
             f'is out of range: the synthetic faces have 2..{n} expressions '
             f'{synthetic.EXPRESSIONS}')
  elif data.source == 'array_record':
    _require(os.path.isfile(os.path.join(data.array_record_dir, 'meta.json')), config,
             'data.array_record_dir', 'holds no meta.json; set it to the output of python -m '
             'input_pipeline.prepare')
  elif config.model in MODEL_GROUPS:
    _require(data.source == 'folder', config, 'data.source', f'cannot give the two groups of '
             f"{config.model}; use 'synthetic', 'folder' or 'array_record'")
    layout = (groups.EXPECTED_DOMAIN_LAYOUT if config.model == 'cyclegan'
              else groups.EXPECTED_GROUP_LAYOUT)
    _require(bool(data.root) and os.path.isdir(data.root), config, 'data.root',
             f'is not an existing directory; set it to a folder laid out as {layout}')
  elif data.source == 'folder':
    for key in ('train_dir', 'test_dir'):
      _require(bool(data[key]) and os.path.isdir(data[key]), config, f'data.{key}',
               f'is not an existing directory; set it to a folder laid out as '
               f'{folders.EXPECTED_FOLDER_LAYOUT}')
  else:
    _check_labelled_source(config)
  if config.model in MODEL_GROUPS:
    _require(data.groups == MODEL_GROUPS[config.model], config, 'data.groups',
             f"must be {MODEL_GROUPS[config.model]!r} for model {config.model!r}")
    return  # the groups' names come from the layout
  # A file source with num_classes 0 takes the data's classes (input_pipeline.pipeline).
  if class_names is not None and not (data.source != 'synthetic' and data.num_classes == 0):
    _require(data.num_classes == len(class_names), config, 'data.num_classes',
             f'but the data set has {len(class_names)} classes {list(class_names)}; set '
             f'--config.data.num_classes={len(class_names)}')


_BOUNDS = (  # key, test, what the value must be
    ('num_train_steps', lambda v: v > 0, '> 0'),
    ('n_critic', lambda v: v >= 1, '>= 1'),
    ('optim.g_lr', lambda v: v > 0, '> 0'),
    ('optim.d_lr', lambda v: v > 0, '> 0'),
    ('ema_decay', lambda v: 0 <= v < 1, 'in [0, 1) (0 disables the EMA)'),
    ('log_every', lambda v: v > 0, '> 0'),
    ('sample_every', lambda v: v > 0, '> 0'),
    ('checkpoint_every', lambda v: v > 0, '> 0'),
    ('compute_dtype', lambda v: v in ('float32', 'bfloat16'),
     "'float32' or 'bfloat16' (mixed precision: float32 parameters, bfloat16 compute)"),
)


def validate(config: ml_collections.ConfigDict, num_devices: int,
             class_names: Sequence[str] | None = None) -> None:
  """Raises ConfigError for the first problem found; `class_names`: the training data's classes."""
  model = config.get('model')
  if model not in REFERENCE_CONFIGS:
    raise ConfigError(f'config.model = {model!r} is unknown; known models: '
                      f'{sorted(REFERENCE_CONFIGS)}.')
  _check_keys(config, REFERENCE_CONFIGS[model].get_config(''), model)
  _require(config.batch_size > 0 and config.batch_size % num_devices == 0, config, 'batch_size',
           f'is not divisible by the {num_devices} devices (the batch is split evenly across '
           f'them); use a multiple of {num_devices}')
  _check_sizes(config)
  if model == 'dcam':
    _check_dcam(config)
  _check_data(config, class_names)
  for key, ok, must in _BOUNDS:
    _require(ok(_get(config, key)), config, key, f'must be {must}')
