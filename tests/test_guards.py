"""Non-finite guard and SIGTERM preemption of the training loop."""

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import stargan as stargan_config
from jaxpr_gan import checkpointing
from jaxpr_gan import registry
from jaxpr_gan.training import loop
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib
from tests import conftest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class _PoisonedD:
  """Wraps an objective: D's adversarial term (hence its loss and gradients) becomes NaN."""

  inner: object

  def __getattr__(self, name):
    return getattr(self.inner, name)

  def d_loss(self, d_params, g_params, batch, rng, step=0):
    total, metrics = self.inner.d_loss(d_params, g_params, batch, rng, step)
    return total * jnp.nan, dict(metrics, **{'D/adv': metrics['D/adv'] * jnp.nan})


def _config():
  return stargan_config.get_config('tiny')


def _equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_nonfinite_update_leaves_state_unchanged_and_is_counted():
  config = _config()
  config.ema_decay = 0.5
  objective = registry.build(config, 5)
  state = state_lib.init_state(objective, config)
  batch = {'image': jnp.full((8, 16, 16, 3), 100, jnp.uint8), 'label': jnp.arange(8) % 5}
  rng = jax.random.PRNGKey(3)
  d_bad, _ = map(jax.jit, steps_lib.make_step_fns(_PoisonedD(objective), config))
  d_good, g_good = map(jax.jit, steps_lib.make_step_fns(objective, config))

  after, metrics = d_bad(state, batch, rng)
  _equal(
    (after.params, after.opt_state, after.ema_params),
    (state.params, state.opt_state, state.ema_params),
  )
  assert int(after.step) == 1  # the batch is consumed: data order stays that of a clean run
  assert float(metrics['D/nonfinite_steps']) == 1.0
  assert int(after.nonfinite_run['d']) == 1
  after, _ = d_bad(after, batch, rng)
  assert int(after.nonfinite_run['d']) == 2 and int(after.nonfinite_run['g']) == 0
  # A finite update applies and ends the run of skips.
  good, metrics = d_good(after, batch, rng)
  assert float(metrics['D/nonfinite_steps']) == 0.0 and int(good.nonfinite_run['d']) == 0
  assert not np.array_equal(
    np.asarray(jax.tree.leaves(good.params['d'])[0]),
    np.asarray(jax.tree.leaves(state.params['d'])[0]),
  )
  good, metrics = g_good(good, batch, rng)
  assert float(metrics['G/nonfinite_steps']) == 0.0


def test_consecutive_nonfinite_steps_stop_the_run_and_keep_the_last_good_checkpoint(
  tmp_path, monkeypatch
):
  workdir = str(tmp_path)
  config = _config()
  config.num_train_steps = 2
  loop.train(config, workdir)  # good steps 1-2, checkpoint at 2
  config = _config()
  config.log_every = 1
  config.max_nonfinite_steps = 2
  build = registry.build
  monkeypatch.setattr(loop.registry, 'build', lambda *a: _PoisonedD(build(*a)))
  with pytest.raises(
    loop.NonFiniteError, match=re.escape('2 consecutive D updates up to step 4 (from step 3)')
  ) as e:
    loop.train(config, workdir)
  assert "non-finite since the last log: ['D/adv', 'D/grad_norm']" in str(e.value)
  assert 'newest checkpoint (step 2)' in str(e.value)
  assert checkpointing.Checkpointer(workdir).all_steps() == [2]


def test_sigterm_saves_at_the_next_step_exits_0_and_the_rerun_continues(tmp_path):
  workdir = str(tmp_path / 'run')
  env = conftest.subprocess_env(device_count=1)
  cmd = [
    sys.executable,
    'train.py',
    '--config',
    'configs/stargan.py:tiny',
    '--workdir',
    workdir,
    '--config.num_train_steps=100000',
    '--config.checkpoint_every=100000',
    '--config.log_every=1',
    '--config.sample_every=100000',
  ]
  log_path = tmp_path / 'log.txt'
  with open(log_path, 'w') as log:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while 'D/adv' not in log_path.read_text():  # the loop is running
      assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
      time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
  out = log_path.read_text()
  saved = int(re.search(r'Preempted \(SIGTERM\): saved step (\d+)', out).group(1))
  assert checkpointing.Checkpointer(workdir).all_steps() == [saved]
  rerun = subprocess.run(
    cmd[:-4] + [f'--config.num_train_steps={saved + 2}'],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=240,
  )
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f'at step {saved}.' in rerun.stderr  # "Resumed from ... at step N."
  assert checkpointing.Checkpointer(workdir).latest_step() == saved + 2
