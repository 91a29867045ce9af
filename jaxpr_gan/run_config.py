"""Run-level config fields, their defaults, and building a class from a config group.

Every model's config is `defaults()` plus its own groups (configs/<model>.py): `generator`,
`discriminator`, `loss`, ... each fed whole to the class it builds (`build`, big_vision's
`Model(**config.model)`), so a new field of a network or an objective is a new key of its group
and nothing else. A config that lacks a key (an older run's) takes its default: the class's
field default for the groups, `defaults()` for the rest (`complete`).
"""

from collections.abc import Mapping
import dataclasses
import difflib
import hashlib
import importlib
import json
from typing import Any

from flax.core import FrozenDict
import ml_collections

from jaxpr_gan import errors

ConfigError = errors.ConfigError


class _Absent:
  """`diff`'s value for a key one side lacks."""

  def __repr__(self) -> str:
    return '<absent>'

  __str__ = __repr__


ABSENT = _Absent()


def _evaluation() -> dict:
  return dict(
    batch_size=64,
    num_grid_faces=10,
    num_identities=0,  # score the first N synthetic test identities only (0: all 50)
    # pytorch-fid's pt_inception-2015-12-05-6726825d.pth; '' skips FID, KID and IS.
    inception_weights='',
    fid_reference_split='test',  # the real images FID compares with
    fid_max_images=10_000,  # at most this many generated (and real) images
    kid_subsets=100,
    kid_subset_size=1000,
    stats_cache_dir='',  # real images' features; '' = ~/.cache/jaxpr_gan/fid_features
    judge_dir='',  # a judge trained by python -m jaxpr_gan.tools.judge; '' skips the judge
    # LPIPS (input to output): torchvision's vgg16 .pth and lpips's weights/v0.1/vgg.pth.
    lpips_backbone='',
    lpips_linear='',
  )


def _data() -> dict:
  return dict(
    # 'synthetic' | 'folder' | 'csv' | 'attributes' | 'filename' | 'tfds' | 'array_record'
    source='synthetic',
    groups='classes',  # 'classes' | 'domains' (CycleGAN) | 'neutral_emotional' (2CET-GAN)
    image_size=128,
    num_classes=5,  # synthetic: neutral, happy, sad, angry, surprised
    style='anime',  # synthetic rendering of labelled faces
    styles=('photo', 'anime'),  # synthetic domains A and B
    intensity_range=(1.0, 1.0),  # synthetic expression intensities drawn
    train_dir='',
    test_dir='',  # source 'folder': root/<class>/*.jpg
    root='',  # two-group folders; source 'filename'
    random_flip=True,
    num_workers=2,
    max_consecutive_bad=0,  # this many undecodable examples in a row stop the run; 0: one pass
    max_pixels=64_000_000,  # larger images (after JPEG's reduced decode) are skipped unread
    seed=0,
    on_error='stop',  # a bad line or file: 'stop' with its name and line, or 'skip' and list
    split='folders',  # 'folders' | 'file' | 'column' | 'fraction' | 'identity'
    split_file='',
    test_fraction=0.2,
    split_seed=0,
    class_names=(),  # the classes in order; () = the sorted labels found
    csv='',
    test_csv='',  # source 'csv': path,label[,intensity][,split][,identity]
    attribute_file='',
    image_dir='',
    attributes=(),  # source 'attributes' (CelebA)
    test_root='',  # source 'filename': root (and test_root with split 'folders')
    filename_pattern='kdef',
    filename_filter='',  # a preset or a regex; 'angle=S'
    tfds_name='',
    tfds_data_dir='',
    tfds_train_split='train',
    tfds_test_split='test',
    tfds_image_key='image',
    tfds_label_key='label',
    array_record_dir='',
  )  # source 'array_record': the output of input_pipeline.prepare


def defaults() -> ml_collections.ConfigDict:
  """The fields every run has, with StarGAN's paper settings where a value must be chosen."""
  c = ml_collections.ConfigDict()
  c.model = ''
  c.seed = 0
  c.batch_size = 16
  c.num_train_steps = 200_000
  c.n_critic = 5  # one G update per n_critic D updates
  c.ema_decay = 0.0  # 0 disables the EMA copy of G
  # 'bfloat16': mixed precision, bf16 compute with float32 parameters, optimiser and losses.
  c.compute_dtype = 'float32'
  # 'auto': the CPU fast path on CPU, XLA's convolutions on GPU/TPU; 'xla'; 'cpu_fast'.
  c.conv_impl = 'auto'
  # Updates with a non-finite loss or gradient are skipped; this many in a row stop the run.
  c.max_nonfinite_steps = 20
  c.data = ml_collections.ConfigDict(_data())
  # training/state.py: name 'adam' (weight_decay: PyTorch Adam's L2 term) or 'adamw' (decoupled);
  # schedule 'linear' (lr constant, then linearly to 0 over the last num_decay_steps, lowered
  # every decay_every steps: a staircase), 'constant' or 'cosine' (to end_lr_fraction * lr), after
  # warmup_steps of linear warmup; accumulate_steps: micro-batches per update.
  c.optim = ml_collections.ConfigDict(
    dict(
      name='adam',
      g_lr=1e-4,
      d_lr=1e-4,
      b1=0.5,
      b2=0.999,
      weight_decay=0.0,
      schedule='linear',
      num_decay_steps=100_000,
      decay_every=1,
      warmup_steps=0,
      end_lr_fraction=0.0,
      accumulate_steps=1,
    )
  )
  c.log_every = 100
  c.sample_every = 1000
  c.checkpoint_every = 10_000
  c.max_checkpoints = 3
  c.num_sample_faces = 8
  c.eval = ml_collections.ConfigDict(_evaluation())
  return c


def merged(base: Mapping, over: Mapping) -> ml_collections.ConfigDict:
  """`base` with every key of `over` set (groups merged key by key, new keys added)."""

  def as_dict(d):
    return d.to_dict() if isinstance(d, ml_collections.ConfigDict) else dict(d)

  def merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
      if isinstance(value, ml_collections.ConfigDict):
        value = value.to_dict()
      if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and value:
        out[key] = merge(out[key], value)
      else:
        out[key] = value
    return out

  return ml_collections.ConfigDict(merge(as_dict(base), as_dict(over)))


def set_dotted(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> None:
  """Sets {'generator.conv_dim': 16, ...} on `config` (variants as override dicts)."""
  for dotted, value in overrides.items():
    *parents, leaf = dotted.split('.')
    group = config
    for p in parents:
      group = group[p]
    group[leaf] = value


def type_ok(value: Any, ref: Any) -> bool:
  """value may stand where ref stands: an int for a float, a list for a tuple; no bool for int."""
  if ref is None:
    return True
  if isinstance(ref, bool) or isinstance(value, bool):
    return isinstance(value, bool) and isinstance(ref, bool)
  if isinstance(ref, float):
    return isinstance(value, (int, float))
  if isinstance(ref, (tuple, list)):
    return isinstance(value, (tuple, list)) and (not ref or all(type_ok(v, ref[0]) for v in value))
  if isinstance(ref, Mapping):
    return isinstance(value, Mapping)
  return isinstance(value, type(ref))


def type_name(ref: Any) -> str:
  if isinstance(ref, float):
    return 'float (or int)'
  if isinstance(ref, (tuple, list)):
    return f'sequence of {type_name(ref[0])}' if ref else 'sequence'
  if isinstance(ref, Mapping):
    return 'group of keys'
  return type(ref).__name__


def unknown_key(key: str, value: Any, known, where: str) -> ConfigError:
  close = difflib.get_close_matches(key.rpartition('.')[2], list(known), n=1)
  prefix = key.rpartition('.')[0]
  hint = (
    f'did you mean config.{prefix + "." if prefix else ""}{close[0]}?'
    if close
    else f'known: {sorted(known)}'
  )
  return ConfigError(f'unknown key config.{key} = {value!r} for {where}; {hint}')


def check_value(key: str, value: Any, ref: Any, where: str) -> None:
  if not type_ok(value, ref):
    raise ConfigError(
      f'config.{key} = {value!r} is a {type(value).__name__}; expected a '
      f'{type_name(ref)} as {where}.'
    )


def named_object(name: str, what: str) -> Any:
  """The object a dotted config value names: 'package.module.Name' -> Name of package.module
  (a block, an adversarial loss or a model written outside the library)."""
  module, _, attr = name.rpartition('.')
  try:
    return getattr(importlib.import_module(module), attr)
  except (ImportError, AttributeError) as e:
    raise ConfigError(f'{what} {name!r}: cannot import {attr} from {module} ({e})') from e


def _hashable(value: Any) -> Any:
  """Lists -> tuples, dicts -> FrozenDicts: modules and objectives are hashed by jit."""
  if isinstance(value, Mapping):
    return FrozenDict({k: _hashable(v) for k, v in value.items()})
  if isinstance(value, (list, tuple)):
    return tuple(_hashable(v) for v in value)
  return value


def build(cls, group: Mapping, name: str, exclude: tuple[str, ...] = (), **fixed):
  """`cls(**group, **fixed)`: each key of the config group `name` must be a field of `cls` that
  the builder does not set, of its default's type (a ConfigError names the key otherwise).
  Keys in `exclude` select the class and are not passed."""
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  settable = set(fields) - set(fixed) - {'parent', 'name', 'dtype'}
  kwargs = {}
  for key, value in dict(group).items():
    if isinstance(value, ml_collections.ConfigDict):
      value = value.to_dict()
    if key in exclude:
      continue
    if key not in settable:
      raise unknown_key(f'{name}.{key}', value, settable | set(exclude), cls.__name__)
    default = fields[key].default
    if default is not dataclasses.MISSING:
      check_value(f'{name}.{key}', value, default, f'{cls.__name__}.{key}')
    kwargs[key] = _hashable(value)
  return cls(**kwargs, **fixed)


def _group(value: Any) -> dict | None:
  """A config group (ConfigDict, dict, FrozenDict) as a dict; None for any other value."""
  if isinstance(value, (ml_collections.ConfigDict, ml_collections.FrozenConfigDict)):
    return value.to_dict()
  return dict(value) if isinstance(value, Mapping) else None


def flatten(config: Mapping | ml_collections.ConfigDict) -> dict[str, Any]:
  """{'loss.lambda_rec': 10.0, ...}: every leaf of a config (or a nested dict, e.g. metrics) by
  its dotted key; tuples and lists stay values, and so does an empty group ({})."""
  out = {}

  def walk(group: dict, prefix: str) -> None:
    for key, value in group.items():
      inner = _group(value)
      if inner:
        walk(inner, f'{prefix}{key}.')
      else:
        out[f'{prefix}{key}'] = value if inner is None else inner

  walk(_group(config), '')
  return out


def _canonical(value: Any) -> Any:
  """Tuples as lists and groups as dicts, all the way down: a config as its JSON would read."""
  group = _group(value)
  if group is not None:
    return {str(k): _canonical(v) for k, v in group.items()}
  if isinstance(value, (list, tuple)):
    return [_canonical(v) for v in value]
  return value


def diff(
  a: Mapping | ml_collections.ConfigDict, b: Mapping | ml_collections.ConfigDict
) -> list[tuple[str, Any, Any]]:
  """(dotted key, a's value, b's value) for each key whose values differ, in key order; a key
  one side lacks has `ABSENT` there. A tuple equals the list of its items (a saved config)."""
  flat_a, flat_b = flatten(a), flatten(b)
  found = []
  for key in sorted(flat_a.keys() | flat_b.keys()):
    va, vb = flat_a.get(key, ABSENT), flat_b.get(key, ABSENT)
    if va is ABSENT or vb is ABSENT or _canonical(va) != _canonical(vb):
      found.append((key, va, vb))
  return found


def config_hash(config: Mapping | ml_collections.ConfigDict) -> str:
  """The first 12 hex digits of the SHA-256 of the config's canonical JSON (sorted keys, tuples
  as lists): equal configs hash alike whatever their key order or container types."""
  text = json.dumps(_canonical(config), sort_keys=True, separators=(',', ':'), default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:12]
