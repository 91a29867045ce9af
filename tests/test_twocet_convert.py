"""2CET-GAN's official checkpoints (one file of G, E, D; the `_s` file of the EMA G and E) ->
an imported run whose networks give the official modules' outputs."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
import torch  # test-only dependency, as for the conversion itself

from configs import twocet as twocet_config
from jaxpr_gan import errors
from jaxpr_gan import registry
from jaxpr_gan.evaluation import evaluate
from jaxpr_gan.evaluation import restore
from jaxpr_gan.tools import convert
from jaxpr_gan.tools import edit
from jaxpr_gan.tools import export
from tests import torch_official
from tests import torch_official_twocet as official
from tests.test_cli import _run
from tests.test_cli import _user_error

SIZE, DIM_IN, MAX_DIM = 128, 16, 64  # 128 px at reduced widths; the structure is the paper's


def _config(size=SIZE, dim_in=DIM_IN, max_dim=MAX_DIM, variant=''):
  config = twocet_config.get_config(variant)
  config.data.image_size = size
  for group in (config.generator, config.discriminator):
    group.dim_in, group.max_conv_dim = dim_in, max_dim
  return config


def _networks(seed, size=SIZE, code_dim=32, dim_in=DIM_IN, max_dim=MAX_DIM):
  nets = official.create(size, code_dim, max_dim, dim_in)
  return [torch_official.randomize(n, seed + i) for i, n in enumerate(nets)]


def _nchw(a):
  return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def _torch_outputs(g, e, x, ref):
  """(G(x, E(ref)) NHWC, E(ref)) of the official modules."""
  with torch.no_grad():
    code = e(_nchw(ref))
    return g(_nchw(x), code).numpy().transpose(0, 2, 3, 1), code.numpy()


def _inputs(seed=0, n=2, size=SIZE):
  rng = np.random.default_rng(seed)
  return [rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32) for _ in range(2)]


@pytest.fixture(scope='module')
def imported(tmp_path_factory):
  """Official-structure networks with random weights, saved as Utils.save_model does, imported."""
  tmp = tmp_path_factory.mktemp('twocet_import')
  g, e, d = _networks(0)
  g_s, e_s = _networks(10)[:2]  # the EMA copies differ from the trained ones
  files = {
    'checkpoint': official.save_model(
      {'generator': g, 'encoder': e, 'discriminator': d}, tmp / '100000_model.ckpt'
    ),
    'ema_checkpoint': official.save_model(
      {'generator': g_s, 'encoder': e_s}, tmp / '100000_model_s.ckpt'
    ),
  }
  workdir = str(tmp / 'run')
  replaced = convert.import_run(_config(), files, None, workdir, step=100000)
  return dict(files=files, workdir=workdir, replaced=replaced, torch=(g, e, d, g_s, e_s))


def test_imported_ema_generator_and_encoder_equal_the_official_stable_modules(imported):
  assert imported['replaced'] == ['g/generator', 'g/encoder', 'd', 'ema/generator', 'ema/encoder']
  run = restore.restore(imported['workdir'])
  assert run.step == 100000 and run.class_names == ['neutral', 'emotional']
  x, ref = _inputs()
  code = run.objective.encode(run.g_params, jnp.asarray(ref))
  ours = run.objective.generate(run.g_params, jnp.asarray(x), code)
  want, want_code = _torch_outputs(*imported['torch'][3:], x, ref)
  np.testing.assert_allclose(np.asarray(code), want_code, atol=1e-4)
  np.testing.assert_allclose(np.asarray(ours), want, atol=1e-4)
  assert np.std(want) > 0.1 and np.std(want_code) > 0.1  # not constant outputs


def test_trained_generator_encoder_and_discriminator_equal_the_official_modules(imported):
  config = registry.complete(_config())
  objective = registry.build(config, 2)
  shapes = jax.eval_shape(objective.init, jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  files = {'checkpoint': imported['files']['checkpoint']}
  params, replaced = convert.convert_params(config, files, template)
  assert replaced == ['g/generator', 'g/encoder', 'd']
  g, e, d = imported['torch'][:3]
  x, ref = _inputs(seed=1)
  code = objective.encode(params['g'], jnp.asarray(ref))
  ours = objective.generate(params['g'], jnp.asarray(x), code)
  want, want_code = _torch_outputs(g, e, x, ref)
  np.testing.assert_allclose(np.asarray(code), want_code, atol=1e-4)
  np.testing.assert_allclose(np.asarray(ours), want, atol=1e-4)
  group = np.array([1, 0])
  logits = objective.discriminator.apply({'params': params['d']}, jnp.asarray(x), group)
  with torch.no_grad():
    want_logits = d(_nchw(x), torch.from_numpy(group)).numpy()
  np.testing.assert_allclose(np.asarray(logits), want_logits, atol=1e-4)


def test_paper_size_official_networks_map_one_to_one_onto_ours():
  """The paper's widths: 33,361,667 / 20,748,192 / 20,735,106 parameters, every key mapped."""
  nets = official.create(128, 32, 512)
  counts = [sum(p.numel() for p in n.parameters()) for n in nets]
  assert counts == [33_361_667, 20_748_192, 20_735_106]
  config = registry.complete(twocet_config.get_config())
  objective = registry.build(config, 2)
  shapes = jax.eval_shape(objective.init, jax.random.key(0), jnp.zeros((1, 128, 128, 3)))
  state_dicts = {
    role: {k: v.numpy() for k, v in n.state_dict().items()}
    for role, n in zip(('generator', 'encoder', 'discriminator'), nets)
  }
  converted, _ = convert.convert_state_dicts(config, state_dicts, shapes)
  sizes = [
    sum(a.size for a in jax.tree.leaves(converted[w])) for w in ('g/generator', 'g/encoder', 'd')
  ]
  assert sizes == counts


def test_edit_with_a_reference_and_export_work_on_the_imported_run(imported, tmp_path):
  faces = np.random.default_rng(2).integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
  photo, smile = str(tmp_path / 'me.png'), str(tmp_path / 'smile.png')
  Image.fromarray(faces[0]).save(photo)
  Image.fromarray(faces[1]).save(smile)
  model = edit.load_model(imported['workdir'])
  written, failed = edit.edit(
    model, [photo], str(tmp_path / 'out'), edit.Request(reference=smile), progress=False
  )
  assert not failed and sorted(os.path.basename(p) for p in written) == [
    'me_reference.png',
    'me_strip.png',
  ]
  assert np.asarray(Image.open(tmp_path / 'out' / 'me_reference.png')).shape == (SIZE, SIZE, 3)
  path = str(tmp_path / 'twocet.jaxgen')
  meta = export.export_run(imported['workdir'], path)
  assert meta['image_size'] == SIZE
  big = np.asarray(Image.fromarray(faces[0]).resize((SIZE, SIZE)))[None]
  out, _ = export.load(path)(big, reference=big)
  assert out.shape == (1, SIZE, SIZE, 3) and out.dtype == np.uint8


def test_wrong_files_are_one_line_errors_that_leave_nothing(imported, tmp_path):
  config, files, workdir = _config(), imported['files'], str(tmp_path / 'run')
  cases = [
    ({'generator': files['checkpoint']}, 'give --checkpoint'),
    ({'checkpoint': files['ema_checkpoint']}, "not the networks ['generator', 'encoder', 'disc"),
    ({'checkpoint': files['checkpoint'], 'generator': files['checkpoint']}, 'drop --generator'),
  ]
  for given, expected in cases:
    with pytest.raises(errors.BadInput, match=expected.replace('[', r'\[')) as e:
      convert.import_run(config, given, None, workdir)
    assert '\n' not in str(e.value)
  with pytest.raises(errors.BadInput, match='--config.data.image_size=128'):
    convert.import_run(_config(size=64), {'checkpoint': files['checkpoint']}, None, workdir)
  no_ema = _config()
  no_ema.ema_decay = 0.0
  with pytest.raises(errors.BadInput, match='keeps no EMA'):
    convert.import_run(no_ema, files, None, workdir)
  assert not os.path.exists(workdir)


def test_the_command_line_imports_checkpoint_and_ema_checkpoint(tmp_path):
  g, e, d = _networks(20, size=16, code_dim=4, dim_in=8, max_dim=16)
  nets = {'generator': g, 'encoder': e, 'discriminator': d}
  official.save_model(nets, tmp_path / '000004_model.ckpt')
  official.save_model({'generator': g, 'encoder': e}, tmp_path / '000004_model_s.ckpt')
  config = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'configs', 'twocet.py')
  args = ['-m', 'jaxpr_gan.tools.convert', f'--config={config}:tiny', '--workdir=run']
  result = _run([*args, '--checkpoint=000004_model.ckpt', '--step=4'], str(tmp_path))
  assert result.returncode == 0, result.stderr[-2000:]
  meta = json.loads((tmp_path / 'run' / 'run.json').read_text())
  assert meta['imported']['converted'] == ['g/generator', 'g/encoder', 'd']
  bad = _run([*args.copy()[:-1], '--workdir=run2', '--ema_checkpoint=000004_model_s.ckpt',
              '--checkpoint=000004_model_s.ckpt'], str(tmp_path))  # fmt: skip
  _user_error(bad, '--checkpoint', "holds ['encoder', 'generator']")
  assert not (tmp_path / 'run2').exists()
  # The imported run evaluates like a trained one: the synthetic protocol's report, step 4.
  report = evaluate.evaluate(str(tmp_path / 'run'))
  assert report['step'] == 4 and report['transfer']['num_pairs'] > 0
  assert (tmp_path / 'run' / 'eval' / 'report.html').exists()
