"""Seeds trained in one vmapped program: each seed's workdir an ordinary run, equal (within float
tolerance) to training that seed alone, resumable bit for bit."""

import functools
import json
import os
import shutil

import jax
import ml_collections
import numpy as np
import pytest

from configs import stargan as stargan_config
from jaxpr_gan import checkpointing
from jaxpr_gan import errors
from jaxpr_gan import registry
from jaxpr_gan.evaluation import restore
from jaxpr_gan.tools import bench
from jaxpr_gan.training import loop
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib

SEEDS = (0, 3)


def _config():
  return stargan_config.get_config('tiny')  # 4 iterations, checkpoints at 2 and 4


@pytest.fixture(scope='module')
def together(tmp_path_factory):
  root = tmp_path_factory.mktemp('seeds')
  workdirs = [str(root / f'seed_{s}') for s in SEEDS]
  state = loop.train_seeds(_config(), workdirs, SEEDS)
  return workdirs, jax.device_get(state)


def _saved(workdir: str, step: int = 4):
  return restore.restore(workdir, step)


def test_each_seed_is_an_ordinary_run_with_its_own_seed(together):
  workdirs, state = together
  assert state.rng.shape == (2, 2) and int(state.step[0]) == 4
  for workdir, seed in zip(workdirs, SEEDS):
    assert checkpointing.Checkpointer(workdir).all_steps() == [2, 4]
    assert os.path.exists(os.path.join(workdir, 'samples', 'step_0000004.png'))
    with open(os.path.join(workdir, 'run.json')) as f:
      assert json.load(f)['config']['seed'] == seed
    assert any(f.startswith('events.out.tfevents') for f in os.listdir(workdir))
  # The seeds differ, and each saved state is its part of the stacked one.
  first, second = (_saved(w).g_params for w in workdirs)
  assert not np.allclose(jax.tree.leaves(first)[0], jax.tree.leaves(second)[0])
  want = state_lib.generator_params(state_lib.seed_slice(state, 1))
  jax.tree.map(np.testing.assert_array_equal, second, want)


def _one_iteration(config, seeds, stacked: bool):
  """One D and one G update of `seeds` on the same batch: vmapped, or each alone."""
  config = registry.complete(config)
  objective = registry.build(config, 5)
  mesh = steps_lib.make_mesh()
  batch = bench._batch(objective, config)
  out = []
  for group in [seeds] if stacked else [[s] for s in seeds]:
    if stacked:
      init = functools.partial(state_lib.init_seeds, objective, config, group)
    else:
      one = ml_collections.ConfigDict(config.to_dict())
      one.seed = group[0]
      init = functools.partial(state_lib.init_state, objective, one)
    d_step, g_step, sharding, batch_sharding = steps_lib.compile_steps(
      objective, config, mesh, jax.eval_shape(init), num_seeds=len(group) if stacked else 0
    )
    state = jax.jit(init, out_shardings=sharding)()
    b = {k: jax.device_put(v, batch_sharding[k]) for k, v in batch.items()}
    state, _ = d_step(state, b, steps_lib.step_rng(state, 0))
    state, _ = g_step(state, b, steps_lib.step_rng(state, 0))
    state = jax.device_get(state)
    out += [state_lib.seed_slice(state, i) for i in range(len(group))] if stacked else [state]
  return out


def test_a_seed_trained_together_equals_it_trained_alone():
  """Adam's moments after one update are linear in the gradients: equal to 1e-4 (another
  program, batched convolutions, sums in another order). Seeds, RNG and data as alone."""
  together = _one_iteration(_config(), SEEDS, stacked=True)
  alone = _one_iteration(_config(), SEEDS, stacked=False)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())
  for got, want in zip(together, alone):
    np.testing.assert_array_equal(got.rng, want.rng)
    for net in ('d', 'g'):
      jax.tree.map(close, got.opt_state[net].mu, want.opt_state[net].mu)
      jax.tree.map(close, got.opt_state[net].nu, want.opt_state[net].nu)
  mu = lambda s: jax.tree.leaves(s.opt_state['g'].mu)[0]
  assert not np.allclose(mu(together[0]), mu(together[1]))  # the seeds differ


def test_seeds_together_resume_bitwise_and_refuse_to_resume_apart(together, tmp_path):
  workdirs, want = together
  copies = [str(tmp_path / os.path.basename(w)) for w in workdirs]
  for src, dst in zip(workdirs, copies):
    shutil.copytree(src, dst)
    shutil.rmtree(os.path.join(dst, 'checkpoints', '4'))
  got = jax.device_get(loop.train_seeds(_config(), copies, SEEDS))  # resumes both at step 2
  jax.tree.map(np.testing.assert_array_equal, got.params, want.params)
  jax.tree.map(np.testing.assert_array_equal, got.opt_state, want.opt_state)
  shutil.rmtree(os.path.join(copies[0], 'checkpoints', '4'))
  with pytest.raises(errors.BadInput, match='different steps'):
    loop.train_seeds(_config(), copies, SEEDS)
