"""Config validation: each mistake is a ConfigError naming the key and value, before compiling."""

import os
import re

import pytest

from configs import cyclegan as cyclegan_config
from configs import dcam as dcam_config
from configs import mmagan as mmagan_config
from configs import sargan as sargan_config
from configs import stargan as stargan_config
from configs import twocet as twocet_config
from input_pipeline import synthetic
from jaxpr_gan import config_validation
from jaxpr_gan import registry
from jaxpr_gan.config_validation import ConfigError
from jaxpr_gan.training import loop
from jaxpr_gan.training import memory

MODULES = {
  'stargan': stargan_config,
  'sargan': sargan_config,
  'mmagan': mmagan_config,
  'cyclegan': cyclegan_config,
  'twocet': twocet_config,
  'dcam': dcam_config,
}


def _tiny(model: str = 'stargan'):
  return MODULES[model].get_config('tiny')


def _names(config) -> list[str]:
  return list(synthetic.EXPRESSIONS[: config.data.num_classes])


def _set(config, key: str, value) -> None:
  """Sets a dotted key, of any type (a config file can hold anything)."""
  *parents, leaf = key.split('.')
  for p in parents:
    config = config[p]
  with config.ignore_type():
    config[leaf] = value


def _fails(config, key: str, value, *more: str, num_devices: int = 8, class_names=None) -> None:
  """validate raises a ConfigError naming `config.key = value` and each of `more`."""
  names = _names(config) if class_names is None else class_names
  with pytest.raises(ConfigError, match=re.escape(f'config.{key} = {value!r}')) as e:
    config_validation.validate(config, num_devices, names)
  for text in more:
    assert text in str(e.value), (text, str(e.value))


def _shipped_variants(module) -> list[str]:
  """Each base, and each modifier alone and after each base."""
  bases = ('', 'quick', 'tiny')
  modifiers = getattr(module, 'MODIFIERS', ())
  return [*bases, *(f'{b}+{m}' if b else m for b in bases for m in modifiers)]


@pytest.mark.parametrize(
  'model,variant', [(m, v) for m, mod in MODULES.items() for v in _shipped_variants(mod)]
)
@pytest.mark.parametrize('num_devices', [1, 8])
def test_every_shipped_variant_validates(model, variant, num_devices):
  config = MODULES[model].get_config(variant)
  if config.batch_size % num_devices:  # the CycleGAN paper's batch of 1 needs one device
    _fails(config, 'batch_size', config.batch_size, 'divisible', num_devices=num_devices)
  else:
    config_validation.validate(config, num_devices, _names(config))


@pytest.mark.parametrize(
  'key,value,suggestion',
  [
    ('batchsize', 8, 'config.batch_size'),
    ('data.image_sise', 16, 'config.data.image_size'),
    (
      'generator.depth',
      3,
      "known: ['block', 'block_args', 'conv_dim', 'image_residual', 'num_blocks', 'num_down']",
    ),
  ],
)
def test_unknown_key_suggests_the_closest(key, value, suggestion):
  config = _tiny('sargan' if key.startswith('generator') else 'stargan')
  _set(config, key, value)
  _fails(config, key, value, 'unknown key', suggestion)


@pytest.mark.parametrize(
  'key,value,expected',
  [
    ('data.image_size', '16', 'int'),
    ('n_critic', True, 'int'),  # bools are not ints
    ('optim.g_lr', '1e-4', 'float'),
    ('data.random_flip', 1, 'bool'),
    ('data.intensity_range', ('a', 'b'), 'sequence of float'),
    ('generator', 4, 'group of keys'),
  ],
)
def test_wrong_type(key, value, expected):
  config = _tiny()
  _set(config, key, value)
  _fails(config, key, value, expected)


def test_int_for_float_and_list_for_tuple_are_accepted():
  config = _tiny('mmagan')
  _set(config, 'optim.g_lr', 1)
  _set(config, 'eval.intensities', [0, 0.5, 1.0])
  config_validation.validate(config, 8, _names(config))


def test_a_missing_key_takes_its_default_and_a_missing_group_is_named():
  config = _tiny()
  del config.loss['lambda_gp']  # an older run's config, say
  del config['conv_impl']
  config_validation.validate(config, 8, _names(config))
  assert registry.build(registry.complete(config), 5).lambda_gp == 10.0
  assert registry.complete(config).conv_impl == 'auto'
  del config['discriminator']
  with pytest.raises(ConfigError, match=re.escape('config.discriminator is missing')):
    config_validation.validate(config, 8, _names(config))


def test_unknown_model_lists_the_known():
  config = _tiny()
  config.model = 'dcamgan'
  _fails(
    config, 'model', 'dcamgan', "['cyclegan', 'dcam', 'mmagan', 'sargan', 'stargan', 'twocet']"
  )


def test_batch_not_divisible_by_devices():
  config = _tiny()
  config.batch_size = 12
  _fails(config, 'batch_size', 12, '8 devices')
  config_validation.validate(config, 4, _names(config))


@pytest.mark.parametrize(
  'model,key,value,more',
  [
    ('stargan', 'data.image_size', 24, '2**discriminator.repeat_num = 16'),
    ('stargan', 'data.image_size', 0, '> 0'),
    ('stargan', 'discriminator.repeat_num', 0, '> 0'),
    ('mmagan', 'generator.num_down', 3, ''),  # 16 px / 8 = 2 px bottleneck < 4 for MMARM
    ('sargan', 'generator.num_down', 3, ''),  # and for the SARB hourglass
    ('sargan', 'generator.block', 'attention', 'residual'),
  ],
)
def test_image_size_must_fit_the_downsampling(model, key, value, more):
  config = _tiny(model)
  _set(config, key, value)
  if key == 'generator.num_down':  # the error is on the image size, naming the bottleneck
    _fails(
      config,
      'data.image_size',
      16,
      '2 px bottleneck',
      'generator.num_down = 3',
      repr(config.generator.block),
    )
  else:
    _fails(config, key, value, more)


def test_plain_residual_blocks_accept_a_small_bottleneck():
  config = _tiny('mmagan')
  config.generator.update(num_down=3, block='residual')
  config_validation.validate(config, 8, _names(config))


def test_unknown_data_source_lists_the_known():
  config = _tiny()
  config.data.source = 'imagenet'
  _fails(
    config,
    'data.source',
    'imagenet',
    "('synthetic', 'folder', 'csv', 'attributes', 'filename', 'tfds', 'array_record')",
  )


@pytest.mark.parametrize('key', ['train_dir', 'test_dir'])
def test_missing_data_path(key, tmp_path):
  config = _tiny()
  config.data.update(source='folder', train_dir=str(tmp_path), test_dir=str(tmp_path))
  missing = str(tmp_path / 'nowhere')
  config.data[key] = missing
  _fails(config, f'data.{key}', missing, 'not an existing directory', class_names=['a', 'b'])
  config.data[key] = ''
  _fails(config, f'data.{key}', '', class_names=['a', 'b'])


def test_class_count_must_match_the_data(tmp_path):
  config = _tiny()
  config.data.update(source='folder', train_dir=str(tmp_path), test_dir=str(tmp_path))
  _fails(
    config,
    'data.num_classes',
    5,
    "3 classes ['a', 'b', 'c']",
    'num_classes=3',
    class_names=['a', 'b', 'c'],
  )
  config.data.num_classes = 3
  config_validation.validate(config, 8, ['a', 'b', 'c'])
  config.data.num_classes = 0  # the folder source's "all classes of the folder"
  config_validation.validate(config, 8, ['a', 'b', 'c'])


def test_synthetic_class_count_in_range():
  config = _tiny()
  config.data.num_classes = 8
  _fails(config, 'data.num_classes', 8, '2..7', class_names=list(synthetic.EXPRESSIONS))


@pytest.mark.parametrize(
  'key,value',
  [
    ('num_train_steps', 0),
    ('n_critic', 0),
    ('optim.g_lr', 0.0),
    ('optim.d_lr', -1e-4),
    ('ema_decay', 1.0),
    ('ema_decay', -0.1),
    ('log_every', 0),
    ('sample_every', 0),
    ('checkpoint_every', 0),
    ('max_checkpoints', 0),  # kept nothing and exited 0
    ('max_nonfinite_steps', 0),  # a false NonFiniteError at the first log
    ('batch_size', 0),  # said "not divisible"
    ('batch_size', -8),
    ('num_sample_faces', 0),
    ('eval.batch_size', 0),
    ('eval.num_grid_faces', 0),
    ('data.num_workers', -1),
    ('data.max_consecutive_bad', -1),
    ('data.max_pixels', 0),
  ],
)
def test_numeric_sanity(key, value):
  config = _tiny()
  _set(config, key, value)
  _fails(config, key, value, 'must be')


def test_train_fails_fast_before_compiling(tmp_path, monkeypatch):
  """batch 7 on the 8 test devices: stopped before the objective is built or anything compiled."""

  def never(*args, **kwargs):
    raise AssertionError('validation must come before building and compiling')

  monkeypatch.setattr(loop.registry, 'build', never)
  monkeypatch.setattr(loop.steps_lib, 'compile_steps', never)
  config = _tiny()
  config.batch_size = 7
  with pytest.raises(ConfigError, match=re.escape('config.batch_size = 7')):
    loop.train(config, str(tmp_path / 'run'))


@pytest.mark.parametrize(
  'variant,key,value,more',
  [
    ('tiny', 'generator.architecture', 'vit', "['resnet', 'unet']"),
    ('tiny', 'discriminator.architecture', 'big', "'basic'"),
    ('tiny', 'loss.adversarial', 'wasserstein', "'bce', 'hinge', 'lsgan', 'ns'"),
    ('tiny', 'data.image_size', 24, 'multiple of 16'),
    ('tiny+patchgan', 'data.image_size', 16, 'PatchGAN'),
    ('tiny+patchgan', 'data.image_size', 20, 'PatchGAN'),
    ('quick+unet', 'generator.num_downs', 4, '>= 5'),
    ('tiny', 'data.groups', 'classes', "'domains'"),
    ('tiny', 'generator.dropout', 1.0, '[0, 1)'),
  ],
)
def test_cyclegan_settings(variant, key, value, more):
  config = cyclegan_config.get_config(variant)
  _set(config, key, value)
  _fails(config, key, value, more)


@pytest.mark.parametrize(
  'key,value,more',
  [
    ('data.image_size', 48, 'power of two'),
    ('data.image_size', 8, 'power of two'),
    ('loss.code_range', (0.5, -0.5), 'low < high'),
    ('data.root', '/no/such/dir', 'neutral'),
  ],
)
def test_twocet_settings(key, value, more):
  config = twocet_config.get_config('tiny')
  if key == 'data.root':
    config.data.source = 'folder'
  _set(config, key, value)
  _fails(config, key, value, more)


def test_a_batch_larger_than_the_memory_is_named_before_the_first_step(tmp_path, monkeypatch):
  """The compiled steps' memory figures against the device's (here 512 MiB of host memory per
  device): an error naming batch_size, before any checkpoint or batch (it ended in
  std::bad_alloc after a minute)."""
  monkeypatch.setattr(memory, '_host_available_bytes', lambda: 8 * 2**29)
  config = _tiny()
  config.batch_size = 2**18  # about 1.2 GiB per device
  with pytest.raises(ConfigError, match=r'config.batch_size = 262144 needs about .* GiB per '):
    loop.train(config, str(tmp_path / 'run'))
  assert os.listdir(tmp_path / 'run' / 'checkpoints') == []
  assert not os.path.exists(tmp_path / 'run' / 'run.json')


def test_nonfinite_stop_before_any_checkpoint_names_no_step():
  with pytest.raises(loop.NonFiniteError) as e:
    loop._check_nonfinite(3, {'d': 3, 'g': 0}, ['D/loss'], 3, None)  # pylint: disable=protected-access
  assert 'None' not in str(e.value) and 'No checkpoint was saved yet' in str(e.value)
