"""Model registry: config -> objective (networks + how their losses compose)."""
import jax.numpy as jnp
import ml_collections

from jaxpr_gan.models import cyclegan
from jaxpr_gan.models import dcam
from jaxpr_gan.models import mmagan
from jaxpr_gan.models import sargan
from jaxpr_gan.models import stargan
from jaxpr_gan.models import twocet
from jaxpr_gan.objectives import conditional
from jaxpr_gan.objectives import contextual
from jaxpr_gan.objectives import intensity
from jaxpr_gan.objectives import reference
from jaxpr_gan.objectives import two_domain

CONDITIONAL_MODELS = ('stargan', 'sargan', 'mmagan', 'dcam')
MODELS = CONDITIONAL_MODELS + ('cyclegan', 'twocet')


def compute_dtype(config: ml_collections.ConfigDict):
  """The networks' compute dtype (`config.compute_dtype`, default float32); parameters,
  optimiser state, losses and the gradient penalty stay float32 whatever it is."""
  return jnp.dtype(config.get('compute_dtype', 'float32'))


def _generator(config: ml_collections.ConfigDict) -> stargan.Generator:
  g, dtype = config.generator, compute_dtype(config)
  if config.model == 'stargan':
    return stargan.Generator(conv_dim=g.conv_dim, num_res=g.num_res, num_down=g.num_down,
                             dtype=dtype)
  if config.model == 'dcam':
    return dcam.Generator(
        conv_dim=g.conv_dim, num_down=g.num_down, num_enc_res=g.num_enc_res,
        num_dec_res=g.num_dec_res, num_mask_res=g.num_mask_res, mapping_dim=g.mapping_dim,
        mapping_layers=g.mapping_layers, control_dim=g.control_dim,
        decoder_control=g.decoder_control, attention_mask=g.attention_mask, dtype=dtype)
  factory = sargan.Generator if config.model == 'sargan' else mmagan.Generator
  return factory(conv_dim=g.conv_dim, num_down=g.num_down, num_blocks=g.num_blocks,
                 block=g.block, image_residual=g.image_residual, dtype=dtype)


def _conditional(config: ml_collections.ConfigDict, num_classes: int):
  d, loss = config.discriminator, config.loss
  d_cls = mmagan.Discriminator if config.model == 'mmagan' else stargan.Discriminator
  common = dict(
      generator=_generator(config),
      discriminator=d_cls(image_size=config.data.image_size, num_classes=num_classes,
                          conv_dim=d.conv_dim, repeat_num=d.repeat_num,
                          dtype=compute_dtype(config)),
      num_classes=num_classes, lambda_cls=loss.lambda_cls, lambda_rec=loss.lambda_rec,
      lambda_gp=loss.lambda_gp)
  if config.model == 'dcam':
    return contextual.ContextualGAN(
        **common, lambda_cx=loss.lambda_cx, cx_layers=tuple(loss.cx_layers),
        cx_bandwidth=loss.cx_bandwidth, feature_network=loss.cx_network,
        weights_path=loss.vgg19_weights,
        preprocessing='torch' if loss.vgg19_weights.endswith(('.pth', '.pt')) else 'caffe',
        seed=config.seed)
  if config.model == 'mmagan':
    return intensity.IntensityGAN(
        **common, lambda_info_g=loss.lambda_info_g, lambda_info_d=loss.lambda_info_d,
        lambda_rho=loss.lambda_rho, rec_code=loss.rec_code)
  return conditional.ConditionalGAN(**common)


def _cyclegan(config: ml_collections.ConfigDict) -> two_domain.CycleGAN:
  g, d, loss = config.generator, config.discriminator, config.loss
  dtype = compute_dtype(config)
  if g.architecture == 'unet':
    generator = cyclegan.UnetGenerator(ngf=g.ngf, num_downs=g.unet_num_downs, dropout=g.dropout,
                                       dtype=dtype)
  else:
    generator = cyclegan.ResnetGenerator(ngf=g.ngf, num_blocks=g.num_blocks, num_down=g.num_down,
                                         dropout=g.dropout, dtype=dtype)
  if d.architecture == 'patch':
    discriminator = cyclegan.PatchDiscriminator(ndf=d.ndf, num_layers=d.num_layers, dtype=dtype)
  else:
    discriminator = cyclegan.BasicDiscriminator(ndf=d.ndf, dtype=dtype)
  return two_domain.CycleGAN(
      generator=generator, discriminator=discriminator, adversarial=loss.adversarial,
      lambda_a=loss.lambda_a, lambda_b=loss.lambda_b, lambda_identity=loss.lambda_identity,
      pool_size=loss.pool_size)


def _twocet(config: ml_collections.ConfigDict) -> reference.TwoCycleGAN:
  g, d, loss = config.generator, config.discriminator, config.loss
  size, dtype = config.data.image_size, compute_dtype(config)
  return reference.TwoCycleGAN(
      generator=twocet.Generator(image_size=size, code_dim=g.code_dim, dim_in=g.dim_in,
                                 max_conv_dim=g.max_conv_dim, dtype=dtype),
      encoder=twocet.Encoder(image_size=size, code_dim=g.code_dim, dim_in=g.dim_in,
                             max_conv_dim=g.max_conv_dim, grayscale=config.encoder.grayscale,
                             dtype=dtype),
      discriminator=twocet.Discriminator(image_size=size, dim_in=d.dim_in,
                                         max_conv_dim=d.max_conv_dim, dtype=dtype),
      code_dim=g.code_dim, code_range=tuple(loss.code_range), lambda_adv_e=loss.lambda_adv_e,
      lambda_adv_n=loss.lambda_adv_n, lambda_cyc_n=loss.lambda_cyc_n, lambda_r1=loss.lambda_r1,
      code_weight=tuple(loss.code_weight), ds_weight=tuple(loss.ds_weight),
      cyc_e_weight=tuple(loss.cyc_e_weight), proportional_ds=loss.proportional_ds)


def build(config: ml_collections.ConfigDict, num_classes: int):
  """The objective for `config.model`, networks sized from the config."""
  if config.model in CONDITIONAL_MODELS:
    return _conditional(config, num_classes)
  if config.model == 'cyclegan':
    return _cyclegan(config)
  if config.model == 'twocet':
    return _twocet(config)
  raise ValueError(f'unknown config.model {config.model!r}; known: {MODELS}')
