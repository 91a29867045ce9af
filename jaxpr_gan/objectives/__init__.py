"""Model registry: config -> objective (networks + how their losses compose)."""
import ml_collections

from jaxpr_gan.models import mmagan
from jaxpr_gan.models import sargan
from jaxpr_gan.models import stargan
from jaxpr_gan.objectives import conditional
from jaxpr_gan.objectives import intensity

CONDITIONAL_MODELS = ('stargan', 'sargan', 'mmagan')


def _generator(config: ml_collections.ConfigDict) -> stargan.Generator:
  g = config.generator
  if config.model == 'stargan':
    return stargan.Generator(conv_dim=g.conv_dim, num_res=g.num_res, num_down=g.num_down)
  factory = sargan.Generator if config.model == 'sargan' else mmagan.Generator
  return factory(conv_dim=g.conv_dim, num_down=g.num_down, num_blocks=g.num_blocks,
                 block=g.block, image_residual=g.image_residual)


def build(config: ml_collections.ConfigDict, num_classes: int):
  """The objective for `config.model`, networks sized from the config."""
  if config.model not in CONDITIONAL_MODELS:
    raise ValueError(f'unknown config.model {config.model!r}; known: {CONDITIONAL_MODELS}')
  d, loss = config.discriminator, config.loss
  d_cls = mmagan.Discriminator if config.model == 'mmagan' else stargan.Discriminator
  common = dict(
      generator=_generator(config),
      discriminator=d_cls(image_size=config.data.image_size, num_classes=num_classes,
                          conv_dim=d.conv_dim, repeat_num=d.repeat_num),
      num_classes=num_classes, lambda_cls=loss.lambda_cls, lambda_rec=loss.lambda_rec,
      lambda_gp=loss.lambda_gp)
  if config.model == 'mmagan':
    return intensity.IntensityGAN(
        **common, lambda_info_g=loss.lambda_info_g, lambda_info_d=loss.lambda_info_d,
        lambda_rho=loss.lambda_rho, rec_code=loss.rec_code)
  return conditional.ConditionalGAN(**common)
