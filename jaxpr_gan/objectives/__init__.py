"""Model registry: config -> objective (networks + how their losses compose)."""
import ml_collections

from jaxpr_gan.models import sargan
from jaxpr_gan.models import stargan
from jaxpr_gan.objectives import conditional

CONDITIONAL_MODELS = ('stargan', 'sargan')


def _generator(config: ml_collections.ConfigDict) -> stargan.Generator:
  g = config.generator
  if config.model == 'stargan':
    return stargan.Generator(conv_dim=g.conv_dim, num_res=g.num_res, num_down=g.num_down)
  return sargan.Generator(conv_dim=g.conv_dim, num_down=g.num_down, num_blocks=g.num_blocks,
                          block=g.block, image_residual=g.image_residual)


def build(config: ml_collections.ConfigDict, num_classes: int):
  """The objective for `config.model`, networks sized from the config."""
  if config.model not in CONDITIONAL_MODELS:
    raise ValueError(f'unknown config.model {config.model!r}; known: {CONDITIONAL_MODELS}')
  d = config.discriminator
  return conditional.ConditionalGAN(
      generator=_generator(config),
      discriminator=stargan.Discriminator(  # SARGAN uses StarGAN's discriminator
          image_size=config.data.image_size, num_classes=num_classes, conv_dim=d.conv_dim,
          repeat_num=d.repeat_num),
      num_classes=num_classes, lambda_cls=config.loss.lambda_cls,
      lambda_rec=config.loss.lambda_rec, lambda_gp=config.loss.lambda_gp)
