"""Loss weights and learning rates as values (one compile per sweep), optax schedules and
optimisers, and gradient accumulation."""

import dataclasses
import functools
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import stargan as stargan_config
from jaxpr_gan import errors
from jaxpr_gan import registry
from jaxpr_gan import run_config
from jaxpr_gan.objectives import conditional
from jaxpr_gan.objectives import weights
from jaxpr_gan.training import loop
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib


def test_a_weight_is_its_value_in_arithmetic_and_its_sign_in_tests():
  w = weights.Weight(1, jnp.asarray(2.5))
  assert bool(w) and w > 0 and w >= 0 and not w < 0
  assert float(w * 2.0) == 5.0 and float(4 * w) == 10.0 and float(w * w) == 6.25
  assert not weights.Weight(0, jnp.asarray(0.0))
  with pytest.raises(TypeError, match='only with 0'):
    _ = w > 1
  # Equal and hash-equal whatever the value: the key under which jit keeps one program.
  assert weights.Weight(1, 3.0) == weights.Weight(1, 7.0)
  assert hash(weights.Weight(1, 3.0)) == hash(weights.Weight(1, 7.0))


def _objective(**loss):
  config = stargan_config.get_config('tiny')
  for k, v in loss.items():
    config.loss[k] = v
  return registry.build(registry.complete(config), 5)


def test_split_keeps_the_structure_and_bind_puts_the_values_back():
  a, b, off = _objective(lambda_rec=10.0), _objective(lambda_rec=5.0), _objective(lambda_rec=0.0)
  (sa, va), (sb, vb), (so, _) = map(weights.split, (a, b, off))
  assert set(va) == {'lambda_cls', 'lambda_rec', 'lambda_gp', 'lambda_r1'}
  assert float(va['lambda_rec']) == 10.0 and float(vb['lambda_rec']) == 5.0
  assert va['lambda_rec'].weak_type  # promotes as the Python float it replaces
  assert sa == sb and hash(sa) == hash(sb)  # one program for both
  assert sa != so  # a term switched off is another program
  bound = weights.bind(sa, vb)
  assert float(bound.lambda_rec * 2.0) == 10.0 and bound.lambda_rec.sign == 1


def _compile_messages(caplog, name: str) -> int:
  return sum(f'Compiling jit({name})' in r.getMessage() for r in caplog.records)


def test_a_sweep_over_weights_and_learning_rates_compiles_each_step_once(tmp_path, caplog):
  """Two points of a sweep (other lambda_rec and g_lr) in one process: D and G are compiled for
  the first only; a point that switches a term off is a new program, as the count shows."""
  base = stargan_config.get_config('tiny')
  base.num_train_steps = 2
  points = [
    {'loss.lambda_rec': 10.0, 'optim.g_lr': 1e-4},
    {'loss.lambda_rec': 3.0, 'optim.g_lr': 5e-4},
    {'loss.lambda_rec': 0.0, 'optim.g_lr': 1e-4},
  ]
  steps_lib._jitted_steps.cache_clear()  # steps an earlier test of this worker compiled
  counts = []
  caplog.set_level(logging.WARNING)
  for k, point in enumerate(points):
    config = ml_collections.ConfigDict(base.to_dict())
    run_config.set_dotted(config, point)
    caplog.clear()
    with jax.log_compiles():
      loop.train(config, str(tmp_path / f'point{k}'))
    counts.append((_compile_messages(caplog, 'd_step'), _compile_messages(caplog, 'g_step')))
  assert counts[1] == (0, 0), counts
  assert counts[0][0] >= 1 and counts[0][1] >= 1, counts  # the counter sees a compile
  assert counts[2][1] >= 1, counts  # lambda_rec 0 drops the reconstruction: G recompiles


def _config(**optim):
  config = registry.complete(stargan_config.get_config('tiny'))
  for k, v in optim.items():
    config.optim[k] = v
  config.num_train_steps = 100
  return config


def test_schedules_give_their_values_by_hand():
  lr = lambda config, step: float(state_lib.schedule(config)(2e-4, jnp.asarray(step)))
  near = lambda x: pytest.approx(x, rel=1e-6)
  linear = _config(num_decay_steps=50, decay_every=10)  # decays from step 50, every 10
  assert lr(linear, 0) == lr(linear, 59) == near(2e-4) and lr(linear, 69) == near(2e-4 * 0.8)
  assert lr(_config(schedule='constant'), 99) == near(2e-4)
  cosine = _config(schedule='cosine', end_lr_fraction=0.1)
  assert lr(cosine, 0) == near(2e-4)
  assert lr(cosine, 50) == near(2e-4 * (0.1 + 0.9 * 0.5))
  assert lr(cosine, 100) == near(2e-4 * 0.1)
  warm = _config(schedule='constant', warmup_steps=20)
  assert lr(warm, 0) == 0.0 and lr(warm, 10) == near(1e-4) and lr(warm, 30) == near(2e-4)


def _updates(tx, lr: float, n: int = 3):
  params = {'w': jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), 'b': jnp.ones(3)}
  opt = tx.init(params)
  for i in range(n):
    grads = jax.tree.map(lambda p, i=i: jnp.sin(p * (i + 1)), params)
    params, opt = steps_lib._apply(tx, params, opt, grads, lr)
  return params


def test_adamw_is_optax_adamw_and_adam_keeps_pytorch_l2():
  ours = state_lib.optimizer(_config(name='adamw', weight_decay=0.01))
  reference = optax.adamw(1e-3, b1=0.5, b2=0.999, eps=1e-8, weight_decay=0.01)
  want = _updates(reference, -1.0)  # _apply adds -lr * update: here the update itself
  got = _updates(ours, 1e-3)
  jax.tree.map(np.testing.assert_array_equal, got, want)
  l2 = state_lib.optimizer(_config(name='adam', weight_decay=0.01))
  torch_like = optax.chain(optax.add_decayed_weights(0.01), optax.scale_by_adam(0.5, 0.999, 1e-8))
  jax.tree.map(np.testing.assert_array_equal, _updates(l2, 1e-3), _updates(torch_like, 1e-3))


def test_the_ema_is_optax_moment_update():
  ema, p = {'a': jnp.array([1.0, 2.0])}, {'a': jnp.array([3.0, -1.0])}
  got = state_lib.ema_update(0.9, ema, p)
  np.testing.assert_allclose(got['a'], 0.9 * ema['a'] + 0.1 * p['a'], rtol=1e-7)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _FixedTargets(conditional.ConditionalGAN):
  """StarGAN with targets that do not depend on the batch's order: label + 1."""

  def _targets(self, rng, labels):
    del rng
    return (labels + 1) % self.num_classes, None


def _accumulated_run(k: int, batch, lambda_rec: float = 10.0):
  """One D and one G update of StarGAN tiny (LSGAN, fixed targets: no randomness in the losses)
  on `batch` in `k` micro-batches; -> (initial state, state, metrics)."""
  config = registry.complete(stargan_config.get_config('tiny'))
  config.loss.adversarial = 'lsgan'  # no random interpolation (WGAN-GP's) in the losses
  config.loss.lambda_rec = lambda_rec
  config.optim.accumulate_steps = k
  config.ema_decay = 0.9
  config.batch_size = len(batch['label'])
  built = registry.build(config, 5)
  objective = _FixedTargets(**{f.name: getattr(built, f.name) for f in dataclasses.fields(built)})
  init = functools.partial(state_lib.init_state, objective, config)
  mesh = steps_lib.make_mesh()
  d_step, g_step, sharding, batch_sharding = steps_lib.compile_steps(
    objective, config, mesh, jax.eval_shape(init)
  )
  first = jax.device_get(jax.jit(init)())
  state = jax.device_put(first, sharding)
  batch = {k: jax.device_put(v, batch_sharding[k]) for k, v in batch.items()}
  state, dm = d_step(state, batch, jax.random.PRNGKey(0))
  state, gm = g_step(state, batch, jax.random.PRNGKey(0))
  return first, jax.device_get(state), jax.device_get(dict(dm, **gm))


def _batch(n: int = 16):
  rng = np.random.default_rng(0)
  return {
    'image': rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
    'label': (np.arange(n) % 5).astype(np.int32),
  }


def test_k_micro_batches_equal_one_batch_k_times_larger():
  """Adam's moments after one update are linear in the gradient: they show the accumulated mean
  gradient equal to the whole batch's. One update counts once: the step, the EMA."""
  _, whole, whole_metrics = _accumulated_run(1, _batch())
  first, accumulated, metrics = _accumulated_run(2, _batch())
  for key in ('D/loss', 'G/loss', 'D/grad_norm', 'G/grad_norm', 'G/rec', 'G/cls', 'D/cls'):
    np.testing.assert_allclose(metrics[key], whole_metrics[key], rtol=2e-5, err_msg=key)
  # Sums in another order: each leaf to 1e-4, or 1e-5 of its largest entry (sums that cancel).
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())
  for net in ('d', 'g'):
    jax.tree.map(close, accumulated.opt_state[net].mu, whole.opt_state[net].mu)
    jax.tree.map(close, accumulated.opt_state[net].nu, whole.opt_state[net].nu)
  assert int(accumulated.step) == 1  # one iteration, whatever k
  once = state_lib.ema_update(0.9, first.ema_params, accumulated.params['g'])
  twice = state_lib.ema_update(0.9, once, accumulated.params['g'])
  near = lambda a, b: np.allclose(a, b, rtol=1e-6, atol=0)
  assert all(jax.tree.leaves(jax.tree.map(near, accumulated.ema_params, once)))  # updated once
  assert not all(jax.tree.leaves(jax.tree.map(near, accumulated.ema_params, twice)))
  # The check can fail: one micro-batch alone has another gradient.
  _, half, _ = _accumulated_run(1, {k: v[::2] for k, v in _batch().items()})
  mu = lambda s: jax.tree.leaves(s.opt_state['g'].mu)
  assert max(float(np.max(np.abs(a - b))) for a, b in zip(mu(half), mu(whole))) > 1e-4


def test_a_non_finite_micro_batch_skips_the_whole_update_once():
  first, state, metrics = _accumulated_run(2, _batch(), lambda_rec=float('inf'))
  assert float(metrics['G/nonfinite_steps']) == 1.0 and int(state.nonfinite_run['g']) == 1
  jax.tree.map(np.testing.assert_array_equal, state.params['g'], first.params['g'])
  assert float(metrics['D/nonfinite_steps']) == 0.0 and int(state.step) == 1


def test_accumulated_training_counts_iterations_for_n_critic_and_the_step(tmp_path):
  """4 iterations, n_critic 2, 2 micro-batches each: 4 D updates, 2 G updates, step 4."""
  config = stargan_config.get_config('tiny')  # batch 8, n_critic 2, 4 iterations
  config.optim.accumulate_steps = 2
  mesh = steps_lib.make_mesh(jax.devices()[:4])  # 8 = 2 micro-batches x 4 devices
  state = jax.device_get(loop.train(config, str(tmp_path / 'run'), mesh=mesh))
  assert int(state.step) == 4
  assert int(state.opt_state['d'].count) == 4 and int(state.opt_state['g'].count) == 2


@pytest.mark.parametrize(
  'key,value,message',
  [
    ('schedule', 'cos', "config.optim.schedule = 'cos'"),
    ('name', 'sgd', "config.optim.name = 'sgd'"),
    ('accumulate_steps', 3, 'optim.accumulate_steps x devices = 3 x 8'),
  ],
)
def test_optimiser_settings_are_checked(key, value, message):
  from jaxpr_gan import config_validation  # noqa: PLC0415

  config = stargan_config.get_config('tiny')
  config.optim[key] = value
  with pytest.raises(errors.ConfigError, match=message.replace('(', r'\(')):
    config_validation.validate(config, 8)
