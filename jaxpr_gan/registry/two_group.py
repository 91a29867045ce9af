"""The two-group models, each declared once: CycleGAN Face2Anime (two unpaired domains) and
2CET-GAN (expression transfer by reference codes)."""

from collections.abc import Mapping

from jaxpr_gan import converters
from jaxpr_gan import run_config
from jaxpr_gan.models import cyclegan
from jaxpr_gan.models import twocet
from jaxpr_gan.objectives import reference
from jaxpr_gan.objectives import two_domain
from jaxpr_gan.registry import compute_dtype
from jaxpr_gan.registry import Config
from jaxpr_gan.registry import Model
from jaxpr_gan.registry import register
from jaxpr_gan.registry import require as _require

# --- CycleGAN: two unpaired domains. ---


def _build_cyclegan(config: Config, num_classes: int) -> two_domain.CycleGAN:
  del num_classes
  g, d, dtype = config.generator, config.discriminator, compute_dtype(config)
  generator = run_config.build(
    _architecture(cyclegan.GENERATORS, config, 'generator'),
    g,
    'generator',
    exclude=('architecture',),
    dtype=dtype,
  )
  discriminator = run_config.build(
    _architecture(cyclegan.DISCRIMINATORS, config, 'discriminator'),
    d,
    'discriminator',
    exclude=('architecture',),
    dtype=dtype,
  )
  return run_config.build(
    two_domain.CycleGAN, config.loss, 'loss', generator=generator, discriminator=discriminator
  )


def _architecture(choices: Mapping[str, type], config: Config, group: str) -> type:
  _require(
    config[group].get('architecture') in choices,
    config,
    f'{group}.architecture',
    f'is unknown; use one of {sorted(choices)}',
  )
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
    _require(
      size % 2**g.num_down == 0,
      config,
      'data.image_size',
      f'is not divisible by 2**generator.num_down = {2**g.num_down}',
    )
  else:
    _require(
      g.num_downs >= 5 and size % 2**g.num_downs == 0,
      config,
      'generator.num_downs',
      f'must be >= 5 (the U-Net has 5 fixed levels) with data.image_size ({size}) '
      'divisible by 2**num_downs; log2(image_size) goes down to 1x1',
    )
  if d.architecture == 'basic':
    _require(
      size % 16 == 0,
      config,
      'data.image_size',
      "is not a multiple of 16, which the 'basic' discriminator (strides 2, 2, 4) needs",
    )
  else:
    least = 3 * 2**d.num_layers
    _require(
      size >= least and size % 2**d.num_layers == 0,
      config,
      'data.image_size',
      f'is too small for a PatchGAN with discriminator.num_layers = {d.num_layers}: use a '
      f'multiple of {2**d.num_layers} of at least {least}',
    )


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


register(
  Model(
    'cyclegan',
    two_domain.CycleGAN,
    _build_cyclegan,
    check=_check_cyclegan,
    upgrade=_cyclegan_upgrade,
    defaults={'data': {'groups': 'domains'}},
    converter=converters.cyclegan,
  )
)


# --- 2CET-GAN: expression transfer by reference codes. ---


def _build_twocet(config: Config, num_classes: int) -> reference.TwoCycleGAN:
  del num_classes
  g, size, dtype = config.generator, config.data.image_size, compute_dtype(config)
  generator = run_config.build(twocet.Generator, g, 'generator', image_size=size, dtype=dtype)
  # The encoder has the generator's code size and widths.
  encoder = run_config.build(
    twocet.Encoder,
    config.encoder,
    'encoder',
    image_size=size,
    code_dim=g.code_dim,
    dim_in=g.dim_in,
    max_conv_dim=g.max_conv_dim,
    dtype=dtype,
  )
  discriminator = run_config.build(
    twocet.Discriminator, config.discriminator, 'discriminator', image_size=size, dtype=dtype
  )
  return run_config.build(
    reference.TwoCycleGAN,
    config.loss,
    'loss',
    generator=generator,
    encoder=encoder,
    discriminator=discriminator,
    code_dim=g.code_dim,
  )


def _check_twocet(config: Config) -> None:
  size = config.data.image_size
  _require(
    size >= 16 and size & (size - 1) == 0,
    config,
    'data.image_size',
    'is not a power of two >= 16, which the encoder and discriminator trunks (halving '
    'down to a 4x4 map) need',
  )
  lo, hi = config.loss.code_range
  _require(lo < hi, config, 'loss.code_range', 'must be (low, high) with low < high')
  _require(config.generator.code_dim > 0, config, 'generator.code_dim', 'must be > 0')


register(
  Model(
    'twocet',
    reference.TwoCycleGAN,
    _build_twocet,
    groups=('generator', 'encoder', 'discriminator', 'loss'),
    check=_check_twocet,
    converter=converters.twocet,
    defaults={
      'data': {'groups': 'neutral_emotional'},
      # code_scales: multiples of each class's mean training code applied to neutral
      # test faces; intensity_grid: rendered intensities the output is matched
      # against; codes_per_class: training faces per class whose codes are
      # averaged (0: all).
      'eval': {
        'code_scales': (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5),
        'intensity_grid': 21,
        'codes_per_class': 0,
      },
    },
  )
)
