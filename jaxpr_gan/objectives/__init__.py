"""Model registry: config -> objective (networks + how their losses compose)."""
import ml_collections

from jaxpr_gan.models import stargan
from jaxpr_gan.objectives import conditional


def build(config: ml_collections.ConfigDict, num_classes: int):
  """The objective for `config.model`, networks sized from the config."""
  if config.model == 'stargan':
    g, d = config.generator, config.discriminator
    return conditional.ConditionalGAN(
        generator=stargan.Generator(conv_dim=g.conv_dim, num_res=g.num_res, num_down=g.num_down),
        discriminator=stargan.Discriminator(
            image_size=config.data.image_size, num_classes=num_classes, conv_dim=d.conv_dim,
            repeat_num=d.repeat_num),
        num_classes=num_classes, lambda_cls=config.loss.lambda_cls,
        lambda_rec=config.loss.lambda_rec, lambda_gp=config.loss.lambda_gp)
  raise ValueError(f'unknown config.model {config.model!r}; known: stargan')
