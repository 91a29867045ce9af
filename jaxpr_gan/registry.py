"""Every model, declared once: how its objective is built, its own checks, its converter.

`config.model` names a model registered here (the six of the papers below) or a `Model` declared
anywhere else, by its dotted path ('my_package.my_model.MODEL'; docs/extending.md). Networks
and objectives are built from their config groups whole (`run_config.build`), so a new field is
a new config key only.
"""
import dataclasses
from typing import Callable, Mapping

import jax.numpy as jnp
import ml_collections

from jaxpr_gan import converters
from jaxpr_gan import run_config
from jaxpr_gan.models import cyclegan
from jaxpr_gan.models import dcam
from jaxpr_gan.models import mmagan
from jaxpr_gan.models import stargan
from jaxpr_gan.models import twocet
from jaxpr_gan.nn import blocks
from jaxpr_gan.objectives import conditional
from jaxpr_gan.objectives import contextual
from jaxpr_gan.objectives import intensity
from jaxpr_gan.objectives import reference
from jaxpr_gan.objectives import two_domain
from jaxpr_gan.run_config import ConfigError

Config = ml_collections.ConfigDict


def _no_checks(config: Config) -> None:
  del config


def _unchanged(saved: dict) -> dict:
  return saved


@dataclasses.dataclass(frozen=True)
class Model:
  """A model: its `objective` class (whose `family` is the evaluation protocol); `build(config,
  num_classes)` -> that objective with its networks, made from the config groups named in
  `groups`; `check(config)` raises ConfigError for what only this model cannot run; `defaults`
  are its run-level keys beyond run_config.defaults() (e.g. its data grouping, its evaluation
  settings); `upgrade` maps an older run's saved config dict to today's keys; `converter(config)`
  tells tools/convert which official checkpoint feeds which network."""
  name: str
  objective: type
  build: Callable[[Config, int], object]
  groups: tuple[str, ...] = ('generator', 'discriminator', 'loss')
  check: Callable[[Config], None] = _no_checks
  defaults: Mapping = dataclasses.field(default_factory=dict)
  upgrade: Callable[[dict], dict] = _unchanged
  converter: Callable[[Config], converters.Converters] | None = None

  @property
  def family(self) -> str:
    """'conditional', 'two_domain' or 'reference'."""
    return self.objective.family


_MODELS: dict[str, Model] = {}


def register(model: Model) -> Model:
  """Makes `config.model = model.name` build `model`."""
  if model.name in _MODELS and _MODELS[model.name] != model:
    raise ValueError(f'a model named {model.name!r} is registered already')
  _MODELS[model.name] = model
  return model


def names() -> list[str]:
  return sorted(_MODELS)


def get(name: str) -> Model:
  """A registered model, or the Model a dotted path names."""
  if name in _MODELS:
    return _MODELS[name]
  if '.' in str(name):
    model = run_config.named_object(name, 'config.model')
    if not isinstance(model, Model):
      raise ConfigError(f'config.model = {name!r} names a {type(model).__name__}, not a '
                        'registry.Model')
    return model
  raise ConfigError(f'config.model = {name!r} is unknown; known models: {names()}.')


def default_config(name: str) -> Config:
  """run_config.defaults() with the model's own run-level keys: where its config file starts."""
  config = run_config.merged(run_config.defaults(), get(name).defaults)
  config.model = name
  return config


def complete(config: Mapping) -> Config:
  """A run's config (as saved: an older run's may lack keys or name them otherwise) with today's
  keys, every missing one at its default."""
  saved = config.to_dict() if isinstance(config, Config) else dict(config)
  return run_config.merged(default_config(saved['model']), get(saved['model']).upgrade(saved))


def build(config: Config, num_classes: int):
  """The objective of `config.model`, its networks sized from the config."""
  return get(config.model).build(config, num_classes)


def compute_dtype(config: Config):
  """The networks' compute dtype; parameters, optimiser state, losses and the gradient penalty
  stay float32 whatever it is."""
  return jnp.dtype(config.compute_dtype)


# --- The conditional family: StarGAN and its descendants. ---

def _conditional(name: str, objective_cls, discriminator_cls, generator_cls=stargan.Generator,
                 run_keys: tuple[str, ...] = (), **declared) -> Model:
  """A model of G(x, c), D(x) -> (src, cls, ...) and a conditional objective; `run_keys` are
  run-level keys the objective also takes (DCAM-GAN's seed of its random feature network)."""
  def build_fn(config: Config, num_classes: int):
    dtype = compute_dtype(config)
    return run_config.build(
        objective_cls, config.loss, 'loss', num_classes=num_classes,
        generator=run_config.build(generator_cls, config.generator, 'generator', dtype=dtype),
        discriminator=run_config.build(
            discriminator_cls, config.discriminator, 'discriminator', dtype=dtype,
            image_size=config.data.image_size, num_classes=num_classes),
        **{k: config[k] for k in run_keys})
  return Model(name, objective_cls, build_fn, **declared)


def _require(ok: bool, config: Config, key: str, why: str) -> None:
  if not ok:
    value = config
    for part in key.split('.'):
      value = value[part]
    raise ConfigError(f'config.{key} = {value!r} {why}.')


def _check_conditional(config: Config) -> None:
  """The image must survive D's repeat_num and G's num_down halvings, and G's blocks."""
  size, repeat = config.data.image_size, config.discriminator.repeat_num
  down = config.generator.num_down
  _require(size > 0, config, 'data.image_size', 'must be > 0')
  _require(repeat > 0, config, 'discriminator.repeat_num', 'must be > 0')
  _require(down >= 0, config, 'generator.num_down', 'must be >= 0')
  _require(size % 2 ** repeat == 0, config, 'data.image_size',
           f'is not divisible by 2**discriminator.repeat_num = {2 ** repeat} (D halves it '
           f'{repeat} times); use a multiple of {2 ** repeat} or lower discriminator.repeat_num')
  _require(size % 2 ** down == 0, config, 'data.image_size',
           f'is not divisible by 2**generator.num_down = {2 ** down} (G must return the input '
           f'size); use a multiple of {2 ** down} or lower generator.num_down')
  block = config.generator.get('block')
  if block is None:  # DCAM-GAN's generator has its own bottlenecks
    return
  try:
    blocks.get(block)
  except ValueError:
    _require(False, config, 'generator.block', f'is unknown; use one of {blocks.names()} or '
             "the dotted path of a block ('my_package.my_module.MyBlock')")
  least = blocks.min_input_size(block, config.generator.block_args)
  _require(size // 2 ** down >= least, config, 'data.image_size',
           f'leaves a {size // 2 ** down} px bottleneck after generator.num_down = {down} '
           f'halvings, but a {block!r} block needs at least {least} px; use data.image_size >= '
           f'{least * 2 ** down} or lower generator.num_down')


def _stargan_upgrade(saved: dict) -> dict:
  """Runs saved before the shared generator named StarGAN's block count num_res."""
  generator = dict(saved.get('generator', {}))
  if 'num_res' in generator:
    generator['num_blocks'] = generator.pop('num_res')
  return dict(saved, generator=generator)


def _check_dcam(config: Config) -> None:
  """The contextual loss: a known feature network and layers (its weights file is checked when
  a fresh run reads it, so a resumed run does not need it)."""
  from jaxpr_gan.models import vgg  # pylint: disable=import-outside-toplevel
  _check_conditional(config)
  loss, g = config.loss, config.generator
  _require(loss.cx_network in contextual.FEATURE_NETWORKS, config, 'loss.cx_network',
           f'is unknown; use one of {contextual.FEATURE_NETWORKS}')
  _require(bool(loss.cx_layers) and all(l in vgg.LAYER_NAMES for l in loss.cx_layers), config,
           'loss.cx_layers', f'must name VGG19 layers, e.g. relu3_2; known: {vgg.LAYER_NAMES}')
  _require(loss.lambda_cx >= 0, config, 'loss.lambda_cx', 'must be >= 0 (0: no contextual loss)')
  _require(loss.cx_bandwidth > 0, config, 'loss.cx_bandwidth', 'must be > 0')
  _require(g.mapping_layers >= 1, config, 'generator.mapping_layers', 'must be >= 1')


def _check_mmagan(config: Config) -> None:
  _check_conditional(config)
  _require(config.loss.rec_code in intensity.REC_CODES, config, 'loss.rec_code',
           f'is unknown; use one of {intensity.REC_CODES}')


_INTENSITY_EVAL = {'eval': {'intensities': (0.0, 0.25, 0.5, 0.75, 1.0),
                            'intensity_grid': 21}}  # candidate truths at 0, 0.05, ..., 1

register(_conditional('stargan', conditional.ConditionalGAN, stargan.Discriminator,
                      check=_check_conditional, upgrade=_stargan_upgrade,
                      converter=converters.stargan))
register(_conditional('sargan', conditional.ConditionalGAN, stargan.Discriminator,
                      check=_check_conditional, converter=converters.stargan))
register(_conditional('mmagan', intensity.IntensityGAN, mmagan.Discriminator,
                      check=_check_mmagan, defaults=_INTENSITY_EVAL))
register(_conditional('dcam', contextual.ContextualGAN, stargan.Discriminator, dcam.Generator,
                      run_keys=('seed',), check=_check_dcam))


# --- CycleGAN: two unpaired domains. ---

def _build_cyclegan(config: Config, num_classes: int) -> two_domain.CycleGAN:
  del num_classes
  g, d, dtype = config.generator, config.discriminator, compute_dtype(config)
  generator = run_config.build(_architecture(cyclegan.GENERATORS, config, 'generator'), g,
                               'generator', exclude=('architecture',), dtype=dtype)
  discriminator = run_config.build(_architecture(cyclegan.DISCRIMINATORS, config, 'discriminator'),
                                   d, 'discriminator', exclude=('architecture',), dtype=dtype)
  return run_config.build(two_domain.CycleGAN, config.loss, 'loss', generator=generator,
                          discriminator=discriminator)


def _architecture(choices: Mapping[str, type], config: Config, group: str) -> type:
  _require(config[group].get('architecture') in choices, config, f'{group}.architecture',
           f'is unknown; use one of {sorted(choices)}')
  return choices[config[group].architecture]


def _check_cyclegan(config: Config) -> None:
  """A size that every down-sampling of G and D can take."""
  g, d, size = config.generator, config.discriminator, config.data.image_size
  _require(size > 0, config, 'data.image_size', 'must be > 0')
  _require(config.loss.pool_size >= 0, config, 'loss.pool_size', 'must be >= 0 (0: no pool)')
  _require(0 <= g.dropout < 1, config, 'generator.dropout', 'must be in [0, 1)')
  _architecture(cyclegan.GENERATORS, config, 'generator')
  _architecture(cyclegan.DISCRIMINATORS, config, 'discriminator')
  if g.architecture == 'resnet':
    _require(size % 2 ** g.num_down == 0, config, 'data.image_size',
             f'is not divisible by 2**generator.num_down = {2 ** g.num_down}')
  else:
    _require(g.num_downs >= 5 and size % 2 ** g.num_downs == 0, config, 'generator.num_downs',
             f'must be >= 5 (the U-Net has 5 fixed levels) with data.image_size ({size}) '
             'divisible by 2**num_downs; log2(image_size) goes down to 1x1')
  if d.architecture == 'basic':
    _require(size % 16 == 0, config, 'data.image_size',
             "is not a multiple of 16, which the 'basic' discriminator (strides 2, 2, 4) needs")
  else:
    least = 3 * 2 ** d.num_layers
    _require(size >= least and size % 2 ** d.num_layers == 0, config, 'data.image_size',
             f'is too small for a PatchGAN with discriminator.num_layers = {d.num_layers}: use a '
             f'multiple of {2 ** d.num_layers} of at least {least}')


def _cyclegan_upgrade(saved: dict) -> dict:
  """Runs saved before each architecture had its own keys: G and D groups held the keys of both
  architectures (unet_num_downs was the U-Net's num_downs)."""
  g, d = dict(saved['generator']), dict(saved['discriminator'])
  if 'unet_num_downs' in g:
    downs = g.pop('unet_num_downs')
    if g['architecture'] == 'unet':
      g = {'architecture': 'unet', 'ngf': g['ngf'], 'num_downs': downs, 'dropout': g['dropout']}
  if d.get('architecture') == 'basic':
    d.pop('num_layers', None)
  return dict(saved, generator=g, discriminator=d)


register(Model('cyclegan', two_domain.CycleGAN, _build_cyclegan, check=_check_cyclegan, upgrade=_cyclegan_upgrade,
               defaults={'data': {'groups': 'domains'}}, converter=converters.cyclegan))


# --- 2CET-GAN: expression transfer by reference codes. ---

def _build_twocet(config: Config, num_classes: int) -> reference.TwoCycleGAN:
  del num_classes
  g, size, dtype = config.generator, config.data.image_size, compute_dtype(config)
  generator = run_config.build(twocet.Generator, g, 'generator', image_size=size, dtype=dtype)
  # The encoder has the generator's code size and widths.
  encoder = run_config.build(twocet.Encoder, config.encoder, 'encoder', image_size=size,
                             code_dim=g.code_dim, dim_in=g.dim_in, max_conv_dim=g.max_conv_dim,
                             dtype=dtype)
  discriminator = run_config.build(twocet.Discriminator, config.discriminator, 'discriminator',
                                   image_size=size, dtype=dtype)
  return run_config.build(reference.TwoCycleGAN, config.loss, 'loss', generator=generator,
                          encoder=encoder, discriminator=discriminator, code_dim=g.code_dim)


def _check_twocet(config: Config) -> None:
  size = config.data.image_size
  _require(size >= 16 and size & (size - 1) == 0, config, 'data.image_size',
           'is not a power of two >= 16, which the encoder and discriminator trunks (halving '
           'down to a 4x4 map) need')
  lo, hi = config.loss.code_range
  _require(lo < hi, config, 'loss.code_range', 'must be (low, high) with low < high')
  _require(config.generator.code_dim > 0, config, 'generator.code_dim', 'must be > 0')


register(Model('twocet', reference.TwoCycleGAN, _build_twocet, groups=('generator', 'encoder', 'discriminator', 'loss'),
               check=_check_twocet, defaults={
                   'data': {'groups': 'neutral_emotional'},
                   # code_scales: multiples of each class's mean training code applied to neutral
                   # test faces; intensity_grid: rendered intensities the output is matched
                   # against; codes_per_class: training faces per class whose codes are
                   # averaged (0: all).
                   'eval': {'code_scales': (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5),
                            'intensity_grid': 21, 'codes_per_class': 0}}))
