"""The train loop on the tiny config: exact resume, device-count independence, outputs on disk."""

import functools
import os
import shutil

import jax
import numpy as np
import pytest

from configs import stargan as stargan_config
from jaxpr_gan import checkpointing
from jaxpr_gan import registry
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.evaluation import restore
from jaxpr_gan.training import loop
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib


def _config():
  return stargan_config.get_config('tiny')  # 4 iterations, n_critic 2, checkpoints at 2 and 4


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  """A 4-step run on all 8 devices; shared by the tests below."""
  workdir = str(tmp_path_factory.mktemp('run4'))
  state = loop.train(_config(), workdir)
  return workdir, jax.device_get(state)


def _assert_trees_equal(a, b):
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_run_writes_checkpoints_samples_and_class_names(uninterrupted):
  workdir, state = uninterrupted
  assert int(state.step) == 4
  assert checkpointing.Checkpointer(workdir).all_steps() == [2, 4]
  assert os.path.exists(os.path.join(workdir, 'samples', 'step_0000004.png'))
  meta = checkpointing.Checkpointer(workdir).meta(4)
  assert meta['class_names'] == ['neutral', 'happy', 'sad', 'angry', 'surprised']
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(workdir))


def test_resume_after_stop_equals_uninterrupted_run_bitwise(uninterrupted, tmp_path):
  workdir, want = uninterrupted
  # A run stopped after step 2: its workdir holds what the uninterrupted run had at step 2.
  stopped = str(tmp_path / 'stopped')
  shutil.copytree(workdir, stopped)
  shutil.rmtree(os.path.join(stopped, 'checkpoints', '4'))
  assert checkpointing.Checkpointer(stopped).latest_step() == 2
  got = jax.device_get(loop.train(_config(), stopped))  # resumes at 2, runs 3 and 4
  _assert_trees_equal(got, want)  # parameters, both optimiser states, step, RNG
  # Data order: the saved iterator positions agree too.
  config = _config()
  template = jax.eval_shape(
    functools.partial(state_lib.init_state, registry.build(config, 5), config)
  )
  _, it_a = checkpointing.Checkpointer(workdir).restore(4, template)
  _, it_b = checkpointing.Checkpointer(stopped).restore(4, template)
  assert it_a == it_b


def _first_iteration(config, mesh, batch):
  objective = registry.build(config, 5)
  init = functools.partial(state_lib.init_state, objective, config)
  d_step, g_step, state_sharding, _ = steps_lib.compile_steps(
    objective, config, mesh, jax.eval_shape(init)
  )
  state = jax.jit(init, out_shardings=state_sharding)()
  rng = jax.random.PRNGKey(7)
  state, d_metrics = d_step(state, batch, rng)
  state, g_metrics = g_step(state, batch, rng)
  return jax.device_get(dict(d_metrics, **g_metrics))


def test_one_device_agrees_with_eight_devices(uninterrupted, tmp_path):
  assert jax.device_count() == 8
  config = _config()
  rng = np.random.default_rng(0)
  batch = {
    'image': rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8),
    'label': np.arange(8, dtype=np.int32) % 5,
  }
  one = _first_iteration(config, steps_lib.make_mesh(jax.devices()[:1]), batch)
  eight = _first_iteration(config, steps_lib.make_mesh(), batch)
  assert set(one) == set(eight) and 'D/gp' in one and 'G/rec' in one
  for k in one:  # losses and gradient norms: same numbers up to reduction order
    np.testing.assert_allclose(one[k], eight[k], rtol=1e-5, atol=1e-6, err_msg=k)
  # Whole runs: Adam's first steps move weights by about lr = 1e-4 whatever the gradient's
  # size, so reduction-order noise can flip a few near-zero updates; nothing larger differs.
  _, run8 = uninterrupted
  run1 = jax.device_get(
    loop.train(config, str(tmp_path), mesh=steps_lib.make_mesh(jax.devices()[:1]))
  )
  for x, y in zip(jax.tree.leaves(run1.params), jax.tree.leaves(run8.params)):
    np.testing.assert_allclose(x, y, atol=4 * config.optim.d_lr)


def test_evaluation_of_identity_translation_scores_zero(tmp_path):
  config = _config()
  identity = lambda x, target: x
  report = evaluate.evaluate_synthetic(
    config, identity, ['neutral', 'happy', 'sad', 'angry', 'surprised'], str(tmp_path)
  )
  assert report['improvement_rate'] == 0.0
  assert report['psnr_improvement_rate'] == 0.0
  assert report['num_pairs'] == 10 * 5 * 4  # tiny's 10 test identities x sources x targets
  assert report['paired_l1'] == pytest.approx(report['input_as_output']['paired_l1'])
  assert report['same_class']['paired_l1'] == pytest.approx(0.0, abs=1e-6)  # float rounding
  assert os.path.exists(os.path.join(tmp_path, 'grid.png'))


def test_eval_restores_checkpoint_and_writes_report(uninterrupted):
  workdir, state = uninterrupted
  report = evaluate.evaluate(workdir, config=_config())
  assert report['step'] == 4
  assert 0.0 <= report['improvement_rate'] <= 1.0
  assert os.path.exists(os.path.join(workdir, 'eval', 'metrics.json'))
  assert os.path.exists(os.path.join(workdir, 'eval', 'grid.png'))
  _assert_trees_equal(restore.restore(workdir, config=_config()).g_params, state.params['g'])
  with pytest.raises(ValueError, match='saved steps: \\[2, 4\\]'):
    evaluate.evaluate(workdir, step=3)


def test_eval_without_checkpoint_says_what_to_do(tmp_path):
  with pytest.raises(FileNotFoundError, match='train first'):
    evaluate.evaluate(str(tmp_path))


def test_eval_with_another_config_says_which_config_to_use(uninterrupted):
  workdir, _ = uninterrupted
  config = _config()
  config.generator.num_blocks = 2
  with pytest.raises(ValueError, match='run.json'):
    evaluate.evaluate(workdir, config=config)


def _logged_scalars(workdir: str) -> dict[str, list[tuple[int, float]]]:
  """The D/ and G/ metrics of a run's TensorBoard events: {name: [(step, value), ...]}."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top

  acc = event_accumulator.EventAccumulator(workdir, size_guidance={'tensors': 0})
  acc.Reload()
  return {
    t: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(t)]
    for t in acc.Tags()['tensors']
    if t.startswith(('D/', 'G/'))
  }


def test_two_runs_with_the_same_seed_are_identical(uninterrupted, tmp_path):
  workdir, want = uninterrupted
  got = jax.device_get(loop.train(_config(), str(tmp_path)))
  _assert_trees_equal(got, want)
  first, second = _logged_scalars(workdir), _logged_scalars(str(tmp_path))
  assert {'D/adv', 'D/gp', 'G/rec'} <= set(first)
  assert first == second  # every logged loss, bitwise
