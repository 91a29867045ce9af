"""Accelerator readiness without an accelerator: every model's D and G train steps, at paper
size and with the default conv_impl 'auto', lower for GPUs and TPUs (jax.export, platforms cuda
and tpu) to XLA's own convolutions, with nothing of the CPU fast path and no custom calls."""

import functools
import importlib
import re

import jax
import jax.numpy as jnp
import pytest

from jaxpr_gan import registry
from jaxpr_gan.nn import conv
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib

MODELS = ('stargan', 'sargan', 'mmagan', 'dcam', 'cyclegan', 'twocet')


def _lowered(model: str, platforms) -> dict[str, str]:
  """{'d': text, 'g': text}: the paper config's train steps lowered for `platforms`."""
  config = registry.complete(importlib.import_module(f'configs.{model}').get_config(''))
  assert config.conv_impl == 'auto'
  objective = registry.build(config, config.data.num_classes)
  state = jax.eval_shape(functools.partial(state_lib.init_state, objective, config))
  size, n = config.data.image_size, config.batch_size
  batch = {
    k: jax.ShapeDtypeStruct((n, size, size, 3), jnp.uint8)
    if k.startswith('image')
    else jax.ShapeDtypeStruct((n,), jnp.int32)
    for k in objective.batch_keys
  }
  rng = jax.ShapeDtypeStruct((2,), jnp.uint32)
  d_step, g_step = steps_lib.make_step_fns(objective, config, platforms)
  return {
    name: jax.export.export(jax.jit(step), platforms=platforms)(state, batch, rng).mlir_module()
    for name, step in (('d', d_step), ('g', g_step))
  }


@pytest.mark.parametrize('model', MODELS)
def test_paper_size_train_steps_lower_for_gpu_and_tpu_without_cpu_constructs(model):
  for step, text in _lowered(model, ('cuda', 'tpu')).items():
    assert text.count('stablehlo.convolution') > 0, step  # XLA's own convolutions
    assert conv.SCOPE not in text, (model, step)  # nothing of the CPU fast path
    assert re.findall(r'custom_call @([\w.]+)', text) == [], (model, step)


def test_the_same_steps_lowered_for_the_cpu_take_the_fast_path():
  """The detector above can fail: for the CPU, 'auto' is the fast path, named so."""
  lowered = _lowered('stargan', ('cpu',))
  assert all(conv.SCOPE in text for text in lowered.values())
