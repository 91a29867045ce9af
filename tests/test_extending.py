"""The three recipes of docs/extending.md, each done from this file alone and trained 2 tiny
steps: a loss variant, a block, a model."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import sargan as sargan_config
from configs import stargan as stargan_config
from jaxpr_gan import inference
from jaxpr_gan import registry
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.evaluation import restore
from jaxpr_gan.models import stargan
from jaxpr_gan.nn import attention
from jaxpr_gan.nn import blocks
from jaxpr_gan.nn import layers
from jaxpr_gan.objectives import adversarial
from jaxpr_gan.objectives import conditional
from jaxpr_gan.objectives import losses
from jaxpr_gan.training import loop


def _train(config, workdir: str, steps: int = 2):
  config.num_train_steps = steps
  config.checkpoint_every = config.sample_every = config.log_every = steps
  state = loop.train(config, workdir)
  assert int(state.step) == steps
  assert {k: int(v) for k, v in state.nonfinite_run.items()} == {'d': 0, 'g': 0}
  return state


# --- Recipe 1: a loss variant. One-sided label smoothing (Salimans et al. 2016): D aims at 0.9
# for real images, so the real term is least where D(real) = logit(0.9) = ln 9.


def _smoothed_critic(real_logits, fake_logits):
  return losses.binary_cross_entropy(real_logits, 0.9) + losses.binary_cross_entropy(
    fake_logits, 0.0
  )


adversarial.register(
  'smoothed_bce', critic=_smoothed_critic, generator=adversarial.get('bce').generator
)


def test_recipe_a_loss_variant(tmp_path):
  kind = adversarial.get('smoothed_bce')
  entropy = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))  # BCE at its minimum, logit ln 9
  real, fake = jnp.full((2, 1), np.log(9.0)), jnp.full((2, 1), -20.0)
  assert float(kind.critic(real, fake)) == pytest.approx(entropy, rel=1e-5, abs=1e-6)
  assert float(kind.critic(real + 1.0, fake)) > float(kind.critic(real, fake))
  config = sargan_config.get_config('tiny')
  config.loss.adversarial = 'smoothed_bce'  # = --config.loss.adversarial=smoothed_bce
  state = _train(config, str(tmp_path))
  assert restore.restore(str(tmp_path)).objective.adv.kind == 'smoothed_bce'
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))


# --- Recipe 2: a block. A residual block whose update is gated per position by a sigmoid map
# (declared as the generator's attention mask); `reduction` sets the gate's hidden width.


@blocks.register('gated_residual')
class GatedResidual(nn.Module):
  features: int
  reduction: int = 4
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    d, f = self.dtype, self.features
    h = nn.relu(layers.instance_norm(dtype=d)(layers.conv(f, 3, 1, 1, use_bias=False, dtype=d)(x)))
    h = layers.instance_norm(dtype=d)(layers.conv(f, 3, 1, 1, use_bias=False, dtype=d)(h))
    hidden = nn.relu(layers.conv(max(f // self.reduction, 1), 1, dtype=d, name='squeeze')(h))
    gate = nn.sigmoid(layers.conv(1, 1, dtype=d, name='gate')(hidden))
    attention.sow_mask(self, gate)
    return x + gate * h


def test_recipe_a_block(tmp_path):
  config = stargan_config.get_config('tiny')
  config.generator.block = 'gated_residual'  # = --config.generator.block=gated_residual
  config.generator.block_args = {'reduction': 2}
  state = _train(config, str(tmp_path))
  block = state.params['g']['GatedResidual_0']
  width = config.generator.conv_dim * 2**config.generator.num_down  # 16 channels
  assert block['squeeze']['kernel'].shape == (1, 1, width, width // 2)  # reduction reached it
  translator = inference.from_run(str(tmp_path))
  assert translator.has_mask  # the block says so; StarGAN's plain blocks make none
  faces = np.zeros((2, 16, 16, 3), np.uint8)
  _, mask = translator(faces, target=1)
  assert mask.shape == (2, 16, 16) and 0 < mask.min() and mask.max() < 1
  plain = registry.build(stargan_config.get_config('tiny'), 5)
  params = jax.eval_shape(plain.init, jax.random.PRNGKey(0), faces)['g']
  assert not inference.describe(plain, params, stargan_config.get_config('tiny'))['has_mask']


# --- Recipe 3: a model. A conditional GAN whose generator is a small encoder-decoder with a
# skip connection, StarGAN's discriminator and objective; declared here, found by its dotted
# path (config.model = 'tests.test_extending.SKIP_GAN'), so a restored run finds it too.


class SkipGenerator(nn.Module):
  """G(x, c): conv down, conv, conv-transpose up, concatenated with x, conv to RGB, tanh."""

  conv_dim: int = 8
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, c):
    d = self.dtype
    h = layers.tile_condition(x, c).astype(d)
    h = nn.relu(layers.instance_norm(dtype=d)(layers.conv(self.conv_dim, 4, 2, 1, dtype=d)(h)))
    h = nn.relu(layers.instance_norm(dtype=d)(layers.conv(self.conv_dim, 3, 1, 1, dtype=d)(h)))
    h = nn.relu(layers.conv_transpose(self.conv_dim, 4, 2, 1, dtype=d)(h))
    h = layers.conv(3, 3, 1, 1, dtype=d, name='to_rgb')(jnp.concatenate([h, x.astype(d)], -1))
    return jnp.tanh(h).astype(jnp.float32)


def _build_skip_gan(config, num_classes):
  dtype = registry.compute_dtype(config)
  from jaxpr_gan import run_config  # pylint: disable=import-outside-toplevel

  return run_config.build(
    conditional.ConditionalGAN,
    config.loss,
    'loss',
    num_classes=num_classes,
    generator=run_config.build(SkipGenerator, config.generator, 'generator', dtype=dtype),
    discriminator=run_config.build(
      stargan.Discriminator,
      config.discriminator,
      'discriminator',
      dtype=dtype,
      image_size=config.data.image_size,
      num_classes=num_classes,
    ),
  )


def _check_skip_gan(config):
  if config.data.image_size % 2:
    raise registry.ConfigError(
      f'config.data.image_size = {config.data.image_size} is odd; the skip generator halves it once'
    )


SKIP_GAN = registry.Model(
  'skip_gan', conditional.ConditionalGAN, _build_skip_gan, check=_check_skip_gan
)


def _skip_gan_config() -> ml_collections.ConfigDict:
  c = stargan_config.get_config('tiny', model='tests.test_extending.SKIP_GAN')
  c.generator = ml_collections.ConfigDict(dict(conv_dim=8))
  return c


def test_recipe_a_model(tmp_path):
  config = _skip_gan_config()
  _train(config, str(tmp_path))
  run = restore.restore(str(tmp_path))  # from the checkpoint's config, by the dotted path
  assert isinstance(run.objective.generator, SkipGenerator)
  assert set(run.g_params) == {
    'Conv_0',
    'Conv_1',
    'ConvTranspose_0',
    'InstanceNorm_0',
    'InstanceNorm_1',
    'to_rgb',
  }
  report = evaluate.evaluate(str(tmp_path))
  assert 0.0 <= report['improvement_rate'] <= 1.0 and report['step'] == 2
  assert os.path.exists(tmp_path / 'eval' / 'metrics.json')
  bad = _skip_gan_config()
  bad.data.image_size = 15
  with pytest.raises(registry.ConfigError, match='is odd'):
    registry.get(bad.model).check(bad)


SMOOTHED_BCE = adversarial.Kind(critic=_smoothed_critic, generator=adversarial.get('bce').generator)


def test_a_block_and_a_loss_outside_the_library_are_named_by_their_dotted_paths():
  from jaxpr_gan import config_validation  # pylint: disable=import-outside-toplevel

  config = stargan_config.get_config('tiny')
  config.generator.block = 'tests.test_extending.GatedResidual'
  config.generator.block_args = {'reduction': 2}
  config.loss.adversarial = 'tests.test_extending.SMOOTHED_BCE'
  config_validation.validate(config, 8, ['neutral', 'happy', 'sad', 'angry', 'surprised'])
  objective = registry.build(config, 5)
  assert objective.adv.critic_loss  # built
  assert adversarial.get(objective.adversarial) is SMOOTHED_BCE
  shapes = jax.eval_shape(
    objective.init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3), jnp.uint8)
  )
  assert 'GatedResidual_0' in shapes['g']
  config.loss.adversarial = 'tests.test_extending.SkipGenerator'  # not a Kind
  with pytest.raises(registry.ConfigError, match='loss.adversarial'):
    config_validation.validate(config, 8, ['neutral', 'happy', 'sad', 'angry', 'surprised'])
