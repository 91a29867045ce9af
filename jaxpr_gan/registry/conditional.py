"""StarGAN and its descendants (SARGAN, MMA-GAN, DCAM-GAN), each declared once."""

from jaxpr_gan import converters
from jaxpr_gan import run_config
from jaxpr_gan.models import dcam
from jaxpr_gan.models import mmagan
from jaxpr_gan.models import stargan
from jaxpr_gan.nn import blocks
from jaxpr_gan.objectives import conditional
from jaxpr_gan.objectives import contextual
from jaxpr_gan.objectives import intensity
from jaxpr_gan.registry import compute_dtype
from jaxpr_gan.registry import Config
from jaxpr_gan.registry import Model
from jaxpr_gan.registry import register
from jaxpr_gan.registry import require as _require


def _conditional(
  name: str,
  objective_cls,
  discriminator_cls,
  generator_cls=stargan.Generator,
  run_keys: tuple[str, ...] = (),
  **declared,
) -> Model:
  """A model of G(x, c), D(x) -> (src, cls, ...) and a conditional objective; `run_keys` are
  run-level keys the objective also takes (DCAM-GAN's seed of its random feature network)."""

  def build_fn(config: Config, num_classes: int):
    dtype = compute_dtype(config)
    return run_config.build(
      objective_cls,
      config.loss,
      'loss',
      num_classes=num_classes,
      generator=run_config.build(generator_cls, config.generator, 'generator', dtype=dtype),
      discriminator=run_config.build(
        discriminator_cls,
        config.discriminator,
        'discriminator',
        dtype=dtype,
        image_size=config.data.image_size,
        num_classes=num_classes,
      ),
      **{k: config[k] for k in run_keys},
    )

  return Model(name, objective_cls, build_fn, **declared)


def _check_conditional(config: Config) -> None:
  """The image must survive D's repeat_num and G's num_down halvings, and G's blocks."""
  size, repeat = config.data.image_size, config.discriminator.repeat_num
  down = config.generator.num_down
  _require(size > 0, config, 'data.image_size', 'must be > 0')
  _require(repeat > 0, config, 'discriminator.repeat_num', 'must be > 0')
  _require(down >= 0, config, 'generator.num_down', 'must be >= 0')
  _require(
    size % 2**repeat == 0,
    config,
    'data.image_size',
    f'is not divisible by 2**discriminator.repeat_num = {2**repeat} (D halves it '
    f'{repeat} times); use a multiple of {2**repeat} or lower discriminator.repeat_num',
  )
  _require(
    size % 2**down == 0,
    config,
    'data.image_size',
    f'is not divisible by 2**generator.num_down = {2**down} (G must return the input '
    f'size); use a multiple of {2**down} or lower generator.num_down',
  )
  block = config.generator.get('block')
  if block is None:  # DCAM-GAN's generator has its own bottlenecks
    return
  try:
    blocks.get(block)
  except ValueError:
    _require(
      False,
      config,
      'generator.block',
      f'is unknown; use one of {blocks.names()} or '
      "the dotted path of a block ('my_package.my_module.MyBlock')",
    )
  least = blocks.min_input_size(block, config.generator.block_args)
  _require(
    size // 2**down >= least,
    config,
    'data.image_size',
    f'leaves a {size // 2**down} px bottleneck after generator.num_down = {down} '
    f'halvings, but a {block!r} block needs at least {least} px; use data.image_size >= '
    f'{least * 2**down} or lower generator.num_down',
  )


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
  _require(
    loss.cx_network in contextual.FEATURE_NETWORKS,
    config,
    'loss.cx_network',
    f'is unknown; use one of {contextual.FEATURE_NETWORKS}',
  )
  _require(
    bool(loss.cx_layers) and all(l in vgg.LAYER_NAMES for l in loss.cx_layers),
    config,
    'loss.cx_layers',
    f'must name VGG19 layers, e.g. relu3_2; known: {vgg.LAYER_NAMES}',
  )
  _require(loss.lambda_cx >= 0, config, 'loss.lambda_cx', 'must be >= 0 (0: no contextual loss)')
  _require(loss.cx_bandwidth > 0, config, 'loss.cx_bandwidth', 'must be > 0')
  _require(g.mapping_layers >= 1, config, 'generator.mapping_layers', 'must be >= 1')


def _check_mmagan(config: Config) -> None:
  _check_conditional(config)
  _require(
    config.loss.rec_code in intensity.REC_CODES,
    config,
    'loss.rec_code',
    f'is unknown; use one of {intensity.REC_CODES}',
  )


_INTENSITY_EVAL = {
  'eval': {'intensities': (0.0, 0.25, 0.5, 0.75, 1.0), 'intensity_grid': 21}
}  # candidate truths at 0, 0.05, ..., 1

register(
  _conditional(
    'stargan',
    conditional.ConditionalGAN,
    stargan.Discriminator,
    check=_check_conditional,
    upgrade=_stargan_upgrade,
    converter=converters.stargan,
  )
)
register(
  _conditional(
    'sargan',
    conditional.ConditionalGAN,
    stargan.Discriminator,
    check=_check_conditional,
    converter=converters.stargan,
  )
)
register(
  _conditional(
    'mmagan',
    intensity.IntensityGAN,
    mmagan.Discriminator,
    check=_check_mmagan,
    defaults=_INTENSITY_EVAL,
  )
)
register(
  _conditional(
    'dcam',
    contextual.ContextualGAN,
    stargan.Discriminator,
    dcam.Generator,
    run_keys=('seed',),
    check=_check_dcam,
  )
)
