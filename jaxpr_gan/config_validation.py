"""Config checks run before anything is compiled.

A mistyped key, a wrong type or an impossible size otherwise surfaces as an AttributeError or a
shape error deep inside tracing, or is silently ignored; here each stops the run at once with a
ConfigError naming the key (dotted path), its value and what to change. The checks here apply to
every model; each model adds its own (`registry.Model.check`), and the keys of the groups that
build networks and objectives are checked against the fields of what they build.
"""

from collections.abc import Sequence
import difflib
import os
from typing import Any

import ml_collections

from input_pipeline import folders
from input_pipeline import groups
from input_pipeline import pipeline
from input_pipeline import sources
from input_pipeline import synthetic
from jaxpr_gan import registry
from jaxpr_gan import run_config
from jaxpr_gan import storage
from jaxpr_gan import storage_check
from jaxpr_gan.nn import conv
from jaxpr_gan.objectives import adversarial
from jaxpr_gan.run_config import ConfigError
from jaxpr_gan.training import state as state_lib

DATA_SOURCES = pipeline.SOURCES


def _get(config: ml_collections.ConfigDict, key: str) -> Any:
  for part in key.split('.'):
    config = config[part]
  return config


def _is_dir(path: str) -> bool:
  """A local folder, or a gs:// / s3:// prefix with objects (its store checked first: one line
  naming the URL when it cannot be reached)."""
  if not path:
    return False
  storage_check.check_reachable(path)
  return storage.isdir(path)


def _require(ok: bool, config: ml_collections.ConfigDict, key: str, why: str) -> None:
  if not ok:
    raise ConfigError(f'config.{key} = {_get(config, key)!r} {why}.')


def _check_keys(
  config: Any,
  ref: ml_collections.ConfigDict,
  model: str,
  prefix: str = '',
  model_groups: Sequence[str] = (),
) -> None:
  """Every key of config must be in ref (or be one of the model's groups) with a compatible
  type; the groups are checked by what they build."""
  for key in config.keys():
    value, name = config[key], f'{prefix}{key}'
    if key in model_groups:  # checked by what they build
      continue
    if key not in ref:
      raise run_config.unknown_key(
        name, value, list(ref.keys()) + list(model_groups), f'model {model!r}'
      )
    if isinstance(ref[key], ml_collections.ConfigDict):
      if not isinstance(value, ml_collections.ConfigDict):
        raise ConfigError(
          f'config.{name} = {value!r} is a {type(value).__name__}; expected a group of keys.'
        )
      _check_keys(value, ref[key], model, f'{name}.')
    else:
      run_config.check_value(name, value, ref[key], 'in run_config.defaults()')


def _check_loss(config: ml_collections.ConfigDict) -> None:
  """The adversarial loss every model has (objectives.adversarial)."""
  loss = config.loss
  if 'adversarial' in loss:  # else the objective's own default
    try:
      adversarial.get(loss.adversarial)
    except ValueError:
      close = difflib.get_close_matches(loss.adversarial, adversarial.kinds(), n=1)
      _require(
        False,
        config,
        'loss.adversarial',
        (f'is unknown (did you mean {close[0]!r}?)' if close else 'is unknown')
        + f'; use one of {adversarial.kinds()} or the dotted path of an '
        'objectives.adversarial.Kind',
      )
  for key in ('lambda_gp', 'lambda_r1'):
    if key in loss:
      _require(loss[key] >= 0, config, f'loss.{key}', 'must be >= 0 (0: no penalty)')
  if 'r1_every' in loss:
    _require(
      loss.r1_every >= 1,
      config,
      'loss.r1_every',
      'must be >= 1 (1: R1 at every D step; k: every k-th, weighted k times)',
    )


def _check_labelled_source(config: ml_collections.ConfigDict) -> None:
  """The files and keys that the csv, attributes, filename and tfds sources need."""
  data = config.data
  _require(
    data.split in sources.SPLITS, config, 'data.split', f'is unknown; use one of {sources.SPLITS}'
  )
  _require(
    data.on_error in sources.ON_ERROR,
    config,
    'data.on_error',
    f'is unknown; use one of {sources.ON_ERROR}',
  )
  if data.split in ('fraction', 'identity'):
    _require(0 < data.test_fraction < 1, config, 'data.test_fraction', 'must be in (0, 1)')
  if data.split == 'file':
    _require(os.path.isfile(data.split_file), config, 'data.split_file', 'is not a file')
  is_file = lambda key, what: _require(
    bool(data[key]) and os.path.isfile(data[key]),
    config,
    f'data.{key}',
    f'is not a file; set it to {what}',
  )
  is_dir = lambda key, what: _require(
    bool(data[key]) and os.path.isdir(data[key]),
    config,
    f'data.{key}',
    f'is not a directory; set it to {what}',
  )
  if data.source == 'csv':
    is_file('csv', 'a CSV with the header path,label[,intensity][,split][,identity]')
    if data.split == 'folders':
      is_file('test_csv', "the test split's CSV (or use --config.data.split=column/fraction)")
  elif data.source == 'attributes':
    is_file('attribute_file', 'a CelebA-style attribute file (list_attr_celeba.txt)')
    is_dir('image_dir', 'the folder of the images the attribute file names')
    _require(
      len(data.attributes) > 0,
      config,
      'data.attributes',
      "is empty; name the attributes to train on, e.g. ('Black_Hair', 'Blond_Hair')",
    )
  elif data.source == 'filename':
    is_dir('root', 'the folder of the images (searched recursively)')
    if data.split == 'folders':
      is_dir('test_root', "the test images' folder (or use --config.data.split=identity)")
  elif data.source == 'tfds':
    _require(
      bool(data.tfds_name), config, 'data.tfds_name', 'is empty; name the prepared TFDS data set'
    )


def _check_source(config: ml_collections.ConfigDict, grouping: str) -> None:
  """A known source and what it reads: the files, folders or shards it names exist."""
  data = config.data
  _require(
    data.source in DATA_SOURCES, config, 'data.source', f'is unknown; use one of {DATA_SOURCES}'
  )
  if data.source == 'synthetic':
    n = len(synthetic.EXPRESSIONS)
    _require(
      2 <= data.num_classes <= n,
      config,
      'data.num_classes',
      f'is out of range: the synthetic faces have 2..{n} expressions {synthetic.EXPRESSIONS}',
    )
  elif data.source == 'array_record':
    _require(
      _is_dir(data.array_record_dir)
      and storage.exists(storage.join(data.array_record_dir, 'meta.json')),
      config,
      'data.array_record_dir',
      'holds no meta.json; set it to the output of python -m input_pipeline.prepare',
    )
  elif grouping != 'classes':
    _require(
      data.source == 'folder',
      config,
      'data.source',
      f"cannot give the two groups of {config.model}; use 'synthetic', 'folder' or 'array_record'",
    )
    layout = (
      groups.EXPECTED_DOMAIN_LAYOUT if grouping == 'domains' else groups.EXPECTED_GROUP_LAYOUT
    )
    _require(
      _is_dir(data.root),
      config,
      'data.root',
      f'is not an existing directory; set it to a folder laid out as {layout}',
    )
  elif data.source == 'folder':
    for key in ('train_dir', 'test_dir'):
      _require(
        _is_dir(data[key]),
        config,
        f'data.{key}',
        f'is not an existing directory; set it to a folder laid out as '
        f'{folders.EXPECTED_FOLDER_LAYOUT}',
      )
  else:
    _check_labelled_source(config)


def _check_data(config: ml_collections.ConfigDict, class_names: Sequence[str] | None) -> None:
  """A known source, existing folders, and a class count that matches the data's classes."""
  data = config.data
  grouping = registry.default_config(config.model).data.groups  # how the model reads data
  _check_source(config, grouping)
  if grouping != 'classes':
    _require(
      data.groups == grouping,
      config,
      'data.groups',
      f'must be {grouping!r} for model {config.model!r}',
    )
    return  # the groups' names come from the layout
  # A file source with num_classes 0 takes the data's classes (input_pipeline.pipeline).
  if class_names is not None and not (data.source != 'synthetic' and data.num_classes == 0):
    _require(
      data.num_classes == len(class_names),
      config,
      'data.num_classes',
      f'but the data set has {len(class_names)} classes {list(class_names)}; set '
      f'--config.data.num_classes={len(class_names)}',
    )


_BOUNDS = (  # key, test, what the value must be
  ('num_train_steps', lambda v: v > 0, '> 0'),
  ('n_critic', lambda v: v >= 1, '>= 1'),
  ('optim.g_lr', lambda v: v > 0, '> 0'),
  ('optim.d_lr', lambda v: v > 0, '> 0'),
  ('ema_decay', lambda v: 0 <= v < 1, 'in [0, 1) (0 disables the EMA)'),
  ('optim.name', lambda v: v in state_lib.OPTIMIZERS, f'one of {state_lib.OPTIMIZERS}'),
  ('optim.schedule', lambda v: v in state_lib.SCHEDULES, f'one of {state_lib.SCHEDULES}'),
  ('optim.warmup_steps', lambda v: v >= 0, '>= 0 (0: no warmup)'),
  ('optim.end_lr_fraction', lambda v: 0 <= v <= 1, 'in [0, 1]'),
  ('optim.accumulate_steps', lambda v: v >= 1, '>= 1 (micro-batches per update)'),
  ('max_checkpoints', lambda v: v >= 1, '>= 1 (the newest steps kept; 1 keeps only the last)'),
  ('max_nonfinite_steps', lambda v: v >= 1, '>= 1 (consecutive skipped updates before stopping)'),
  ('num_sample_faces', lambda v: v >= 1, '>= 1'),
  ('eval.batch_size', lambda v: v >= 1, '>= 1'),
  ('eval.num_grid_faces', lambda v: v >= 1, '>= 1'),
  ('data.num_workers', lambda v: v >= 0, '>= 0 (0: decode in the training process)'),
  ('data.max_consecutive_bad', lambda v: v >= 0, '>= 0 (0: one pass over the data)'),
  ('data.max_pixels', lambda v: v >= 1, '>= 1'),
  ('log_every', lambda v: v > 0, '> 0'),
  ('sample_every', lambda v: v > 0, '> 0'),
  ('checkpoint_every', lambda v: v > 0, '> 0'),
  (
    'compute_dtype',
    lambda v: v in ('float32', 'bfloat16'),
    "'float32' or 'bfloat16' (mixed precision: float32 parameters, bfloat16 compute)",
  ),
)


def validate(
  config: ml_collections.ConfigDict,
  num_devices: int,
  class_names: Sequence[str] | None = None,
  platform: str | None = None,
) -> None:
  """Raises ConfigError for the first problem found; `class_names`: the training data's classes;
  `platform`: that of the devices ('cpu', 'gpu', 'tpu')."""
  name = config.get('model')
  model = registry.get(name)
  for group in model.groups:
    if group not in config:
      raise ConfigError(
        f'config.{group} is missing (model {name!r}); add it as in configs/{name}.py.'
      )
    if not isinstance(config[group], ml_collections.ConfigDict):
      raise ConfigError(
        f'config.{group} = {config[group]!r} is a {type(config[group]).__name__}; '
        f'expected a group of keys as in configs/{name}.py.'
      )
  complete = registry.complete(config)  # a key the config lacks takes its default
  _check_keys(complete, registry.default_config(name), name, model_groups=model.groups)
  _require(complete.batch_size > 0, complete, 'batch_size', 'must be >= 1')
  _require(
    complete.batch_size % num_devices == 0,
    complete,
    'batch_size',
    f'is not divisible by the {num_devices} devices (the batch is split '
    f'evenly across them); use a multiple of {num_devices}',
  )
  k = complete.optim.accumulate_steps
  _require(
    k < 1 or complete.batch_size % (k * num_devices) == 0,
    complete,
    'batch_size',
    f'is not divisible by optim.accumulate_steps x devices = {k} x {num_devices} (each '
    f'micro-batch is split evenly across the devices); use a multiple of {max(k, 1) * num_devices}',
  )
  _require(
    complete.conv_impl in conv.IMPLS, complete, 'conv_impl', f'is unknown; use one of {conv.IMPLS}'
  )
  if platform not in (None, 'cpu'):
    _require(
      complete.conv_impl != 'cpu_fast',
      complete,
      'conv_impl',
      f"runs on the CPU only, these devices are {platform}; use 'auto' or 'xla'",
    )
  _check_loss(complete)
  model.check(complete)
  registry.build(complete, len(class_names) if class_names else complete.data.num_classes)
  _check_data(complete, class_names)
  for key, ok, must in _BOUNDS:
    _require(ok(_get(complete, key)), complete, key, f'must be {must}')
