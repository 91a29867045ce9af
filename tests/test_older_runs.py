"""Runs saved before the 2026-12-05 restructuring: their configs name keys as they were (StarGAN's
`num_res`, CycleGAN's `unet_num_downs` and shared architecture keys) and lack today's (the
adversarial loss, R1, `block_args`, `conv_impl`, ...). They still restore, evaluate, edit and
export: a lacking key takes its default, a renamed one is mapped (`registry.Model.upgrade`)."""

import functools
import os

import jax
import numpy as np

from configs import cyclegan as cyclegan_config
from configs import stargan as stargan_config
from configs import twocet as twocet_config
from jaxpr_gan import checkpointing
from jaxpr_gan import inference
from jaxpr_gan import registry
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.evaluation import restore
from jaxpr_gan.tools import export
from jaxpr_gan.training import state as state_lib

CLASSES = ['neutral', 'happy', 'sad', 'angry', 'surprised']


def _without(group: dict, *keys) -> dict:
  return {k: v for k, v in group.items() if k not in keys}


def _older(config) -> dict:
  """The config as the code before the restructuring saved it."""
  old = config.to_dict()
  for key in ('conv_impl',):
    old.pop(key)
  old['optim'] = _without(old['optim'], 'decay_every', 'weight_decay')
  old['loss'] = _without(old['loss'], 'r1_every')
  if old['model'] != 'twocet':  # the only one with R1 then
    old['loss'] = _without(old['loss'], 'lambda_r1')
  if old['model'] in ('cyclegan', 'twocet'):  # the only ones without WGAN-GP then
    old['loss'] = _without(old['loss'], 'lambda_gp')
  if old['model'] != 'cyclegan':  # the only one with a choice then
    old['loss'] = _without(old['loss'], 'adversarial')
  return old


def _save(workdir: str, config, saved_config: dict):
  """A checkpoint of `config`'s initial state whose metadata holds `saved_config`."""
  objective = registry.build(config, len(CLASSES))
  state = jax.jit(functools.partial(state_lib.init_state, objective, config))()
  ckpt = checkpointing.Checkpointer(workdir, max_to_keep=None, async_save=False)
  ckpt.save(7, state, None, {'class_names': CLASSES, 'config': saved_config})
  ckpt.close()
  return state


def test_an_older_stargan_run_evaluates_edits_and_exports(tmp_path):
  config = stargan_config.get_config('tiny')
  old = _older(config)
  old['generator'] = {'conv_dim': 4, 'num_res': 1, 'num_down': 2}  # StarGAN's keys then
  workdir = str(tmp_path / 'run')
  state = _save(workdir, config, old)
  run = restore.restore(workdir)
  assert (run.config.generator.num_blocks, run.objective.adversarial) == (1, 'wgan_gp')
  for a, b in zip(jax.tree.leaves(run.g_params), jax.tree.leaves(state.params['g'])):
    np.testing.assert_array_equal(a, b)
  report = evaluate.evaluate(workdir)
  assert report['step'] == 7 and os.path.exists(os.path.join(workdir, 'eval', 'metrics.json'))
  faces = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
  edited, _ = inference.from_run(workdir)(faces, target=2)
  export.export_run(workdir, str(tmp_path / 'g.jaxgen'))
  exported, _ = export.load(str(tmp_path / 'g.jaxgen'))(faces, target=2)
  assert np.abs(edited.astype(int) - exported.astype(int)).max() <= 1


def test_older_cyclegan_and_twocet_runs_restore():
  for variant in ('tiny+unet', 'tiny'):
    config = cyclegan_config.get_config(variant)
    old = _older(config)
    unet = config.generator.architecture == 'unet'
    old['generator'] = {
      'architecture': config.generator.architecture,
      'ngf': 4,
      'num_blocks': 1,
      'num_down': 2,
      'unet_num_downs': 5 if unet else 0,
      'dropout': 0.0,
    }
    old['discriminator'] = {'architecture': 'basic', 'ndf': 4, 'num_layers': 3}
    completed = registry.complete(old)
    assert registry.build(completed, 2).generator == registry.build(config, 2).generator, variant
    assert 'num_layers' not in completed.discriminator
  config = twocet_config.get_config('tiny')
  objective = registry.build(registry.complete(_older(config)), 5)
  assert (objective.adversarial, objective.lambda_r1) == ('bce', 0.5)  # 2CET-GAN's, not WGAN-GP
