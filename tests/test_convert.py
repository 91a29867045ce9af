"""Official PyTorch checkpoints -> our networks: same outputs on the same (random) weights."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch  # test-only dependency (requirements.txt), as for the conversion itself

from configs import cyclegan as cyclegan_config
from configs import sargan as sargan_config
from configs import stargan as stargan_config
from jaxpr_gan import converters
from jaxpr_gan import errors
from jaxpr_gan import registry
from jaxpr_gan.evaluation import restore
from jaxpr_gan.nn import cpu_conv
from jaxpr_gan.tools import convert
from tests import torch_official
from tests.test_cli import _run
from tests.test_cli import _user_error

NUM_CLASSES = 5


def _save(module, path):
  torch.save(module.state_dict(), path)
  return str(path)


def _inputs(size, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
  c = np.eye(NUM_CLASSES, dtype=np.float32)[[1, 3]]
  return x, c


def _torch(module, *arrays):
  module.train()  # per-image InstanceNorm statistics, as the official test code runs
  with torch.no_grad():
    tensors = [
      torch.from_numpy(a.transpose(0, 3, 1, 2).copy()) if a.ndim == 4 else torch.from_numpy(a)
      for a in arrays
    ]
    out = module(*tensors)
  outs = out if isinstance(out, tuple) else (out,)
  return [o.numpy().transpose(0, 2, 3, 1) if o.ndim == 4 else o.numpy() for o in outs]


@pytest.fixture(scope='module')
def stargan_run(tmp_path_factory):
  """The tiny StarGAN config's networks, official-style random weights, imported into a run."""
  tmp = tmp_path_factory.mktemp('stargan_import')
  config = stargan_config.get_config('tiny')
  g = torch_official.randomize(torch_official.StarGenerator(4, NUM_CLASSES, 1), 0)
  d = torch_official.randomize(torch_official.StarDiscriminator(16, 4, NUM_CLASSES, 4), 1)
  files = {'generator': _save(g, tmp / '10-G.ckpt'), 'discriminator': _save(d, tmp / '10-D.ckpt')}
  workdir = str(tmp / 'run')
  names = [f'class{i}' for i in range(NUM_CLASSES)]
  replaced = convert.import_run(config, files, names, workdir, step=10)
  return config, workdir, g, d, replaced


def test_stargan_generator_and_discriminator_equal_the_official_modules(stargan_run):
  config, workdir, g, d, replaced = stargan_run
  files = {
    'generator': os.path.join(os.path.dirname(workdir), '10-G.ckpt'),
    'discriminator': os.path.join(os.path.dirname(workdir), '10-D.ckpt'),
  }
  assert replaced == ['g', 'd']
  run = restore.restore(workdir)
  objective, g_params, class_names, step = run.objective, run.g_params, run.class_names, run.step
  assert step == 10 and class_names == [f'class{i}' for i in range(NUM_CLASSES)]
  x, c = _inputs(16)
  ours = objective.generator.apply({'params': g_params}, jnp.asarray(x), jnp.asarray(c))
  (theirs,) = _torch(g, x, c)
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4)
  assert np.std(theirs) > 0.1  # a real image-like output, not a constant

  params, _ = convert.convert_params(config, files, _template(config))
  src, cls = objective.discriminator.apply({'params': params['d']}, jnp.asarray(x))
  t_src, t_cls = _torch(d, x)
  np.testing.assert_allclose(np.asarray(src), t_src, atol=1e-4)
  np.testing.assert_allclose(np.asarray(cls), t_cls, atol=1e-4)


def test_paper_size_stargan_generator_with_winograd_blocks_equals_the_official_module(tmp_path):
  """128 px, 64 filters, 6 blocks, batch 4: the residual blocks' 256-channel convolutions run as
  Winograd's F(4x4, 3x3) (cpu_conv._winograd_applies), the rest as in the tiny test above."""
  config = stargan_config.get_config()
  g = torch_official.randomize(torch_official.StarGenerator(64, NUM_CLASSES, 6), 3)
  objective = registry.build(config, NUM_CLASSES)
  shapes = jax.eval_shape(objective.init, jax.random.key(0), jnp.zeros((1, 128, 128, 3), jnp.uint8))
  template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)  # D's init takes 19 s
  params, _ = convert.convert_params(config, {'generator': _save(g, tmp_path / 'G.ckpt')}, template)
  rng = np.random.default_rng(3)
  x = rng.uniform(-1, 1, (4, 128, 128, 3)).astype(np.float32)
  c = np.eye(NUM_CLASSES, dtype=np.float32)[[0, 1, 3, 4]]
  block = jax.ShapeDtypeStruct((4, 32, 32, 256), jnp.float32)
  assert cpu_conv._winograd_applies(
    block, jax.ShapeDtypeStruct((3, 3, 256, 256), jnp.float32), 1, ((1, 1), (1, 1))
  )
  ours = jax.jit(objective.generator.apply)({'params': params['g']}, jnp.asarray(x), jnp.asarray(c))
  (theirs,) = _torch(g, x, c)
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4)
  assert np.std(theirs) > 0.1


def test_sargan_generator_equals_the_official_module(tmp_path):
  config = sargan_config.get_config('tiny')
  config.data.image_size = 32  # PyTorch's InstanceNorm refuses the 1x1 map the hourglass hits at 16
  g = torch_official.randomize(torch_official.StarGenerator(4, NUM_CLASSES, 1, sargan=True), 2)
  assert any(k.startswith('att_func.') for k in g.state_dict())  # the unused module is skipped
  objective_params, replaced = convert.convert_params(
    config, {'generator': _save(g, tmp_path / 'G.ckpt')}, _template(config)
  )
  assert replaced == ['g']
  objective = registry.build(config, NUM_CLASSES)
  x, c = _inputs(32, seed=1)
  ours = objective.generator.apply(
    {'params': objective_params['g']}, jnp.asarray(x), jnp.asarray(c)
  )
  (theirs,) = _torch(g, x, c)
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4)


def _template(config):
  objective = registry.build(config, NUM_CLASSES)
  size = config.data.image_size
  return jax.device_get(objective.init(jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.uint8)))


def test_cyclegan_resnet_and_patchgan_equal_the_official_modules(tmp_path):
  config = cyclegan_config.get_config('tiny+official')
  mods = {
    'generator': torch_official.ResnetGenerator(4, 1),
    'generator_b': torch_official.ResnetGenerator(4, 1),
    'discriminator': torch_official.NLayerDiscriminator(4, 3),
    'discriminator_b': torch_official.NLayerDiscriminator(4, 3),
  }
  files = {
    k: _save(torch_official.randomize(m, i), tmp_path / f'{k}.pth')
    for i, (k, m) in enumerate(mods.items())
  }
  params, replaced = convert.convert_params(config, files, _template(config))
  assert sorted(replaced) == ['d/a', 'd/b', 'g/a2b', 'g/b2a']
  objective = registry.build(config, 2)
  x, _ = _inputs(32, seed=2)
  for ours, theirs in [
    (objective.translate(params['g'], jnp.asarray(x), 'a2b'), _torch(mods['generator'], x)[0]),
    (objective.translate(params['g'], jnp.asarray(x), 'b2a'), _torch(mods['generator_b'], x)[0]),
    # D_A judges domain B: it is our discriminator 'b'
    (
      objective.discriminator.apply({'params': params['d']['b']}, jnp.asarray(x)),
      _torch(mods['discriminator'], x)[0],
    ),
  ]:
    np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4)


def test_wrong_architecture_and_missing_file_are_clear_errors(tmp_path):
  config = stargan_config.get_config('tiny')
  two_blocks = torch_official.StarGenerator(4, NUM_CLASSES, 2)  # the config has 1 block
  path = _save(two_blocks, tmp_path / 'G.ckpt')
  with pytest.raises(errors.BadInput, match='another architecture'):
    # block 1 takes the place of the up-sampling layers in the key numbering
    convert.convert_params(config, {'generator': path}, _template(config))
  wider = torch_official.StarGenerator(8, NUM_CLASSES, 1)
  with pytest.raises(errors.BadInput, match='has shape.*conv_dim'):
    convert.convert_params(
      config, {'generator': _save(wider, tmp_path / 'W.ckpt')}, _template(config)
    )
  with pytest.raises(errors.NotFound, match='nope.ckpt.*--generator'):
    convert.convert_params(config, {'generator': str(tmp_path / 'nope.ckpt')}, _template(config))


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  """Official-style files for the error cases: tiny StarGAN G (5 classes) and D (16 px and
  32 px), a SARGAN G of 7 classes, random bytes and a text file."""
  tmp = tmp_path_factory.mktemp('official_files')
  (tmp / 'random.ckpt').write_bytes(np.random.default_rng(0).bytes(256))
  (tmp / 'notes.txt').write_text('not a checkpoint\n')
  mods = {
    'G.ckpt': torch_official.StarGenerator(4, NUM_CLASSES, 1),
    'D.ckpt': torch_official.StarDiscriminator(16, 4, NUM_CLASSES, 4),
    'D32.ckpt': torch_official.StarDiscriminator(32, 4, NUM_CLASSES, 4),
    'sargan_G.ckpt': torch_official.StarGenerator(4, 7, 1, sargan=True),
  }
  out = {
    name: _save(torch_official.randomize(m, i), tmp / name)
    for i, (name, m) in enumerate(mods.items())
  }
  return {**out, 'random.ckpt': str(tmp / 'random.ckpt'), 'notes.txt': str(tmp / 'notes.txt')}


def test_presets_give_the_official_class_orders():
  stargan, sargan = stargan_config.get_config('tiny'), sargan_config.get_config('tiny')
  celeba = 'Black_Hair,Blond_Hair,Brown_Hair,Male,Young'.split(',')  # --selected_attrs default
  sargan_names = 'afraid,angry,disgusted,happy,neutral,sad,surprised'.split(',')  # AFS, ANS, ...
  assert convert.class_names_for(stargan, None, None)[0] == celeba
  assert convert.class_names_for(sargan, None, None)[0] == sargan_names
  rafd = convert.class_names_for(stargan, None, 'rafd')[0]
  assert len(rafd) == 8 and rafd == sorted(rafd)  # ImageFolder's order of the folder names
  assert convert.class_names_for(stargan, ['x', 'y'], 'rafd')[0] == ['x', 'y']  # explicit wins
  with pytest.raises(errors.BadInput, match='--preset kdef is unknown'):
    convert.class_names_for(stargan, None, 'kdef')
  with pytest.raises(errors.BadInput, match='--preset is for class-conditional models'):
    convert.class_names_for(cyclegan_config.get_config('tiny+official'), None, 'celeba')


def test_sargan_imports_with_its_official_class_order_by_default(files, tmp_path):
  config = sargan_config.get_config('tiny')
  config.data.image_size = 32
  convert.import_run(config, {'generator': files['sargan_G.ckpt']}, None, str(tmp_path / 'run'))
  with open(tmp_path / 'run' / 'run.json') as f:
    assert json.load(f)['class_names'] == list(converters.CLASS_ORDERS['sargan'])


def test_a_class_count_other_than_the_weights_is_one_error_naming_both(files, tmp_path):
  config, workdir = stargan_config.get_config('tiny'), str(tmp_path / 'run')
  g = {'generator': files['G.ckpt']}
  with pytest.raises(errors.BadInput) as e:
    convert.import_run(config, g, None, workdir, preset='rafd')
  assert all(t in str(e.value) for t in ('--preset rafd (8 names)', 'hold 5', '--class_names'))
  assert '\n' not in str(e.value)
  with pytest.raises(errors.BadInput, match=r'--class_names \(2 names\) gives 2 .* hold 5'):
    convert.import_run(config, g, ['a', 'b'], workdir)
  assert not os.path.exists(workdir)


def test_a_failure_while_writing_removes_only_what_it_created(files, tmp_path, monkeypatch):
  def fail(config, names, workdir, *args, **kwargs):
    os.makedirs(os.path.join(workdir, 'checkpoints'))
    raise OSError('disk full')

  monkeypatch.setattr(convert.restore_lib, 'write_run', fail)
  config, g = stargan_config.get_config('tiny'), {'generator': files['G.ckpt']}
  with pytest.raises(OSError, match='disk full'):
    convert.import_run(config, g, None, str(tmp_path / 'new'))
  assert not (tmp_path / 'new').exists()
  (tmp_path / 'old').mkdir()
  (tmp_path / 'old' / 'keep.txt').write_text('mine')
  with pytest.raises(OSError, match='disk full'):
    convert.import_run(config, g, None, str(tmp_path / 'old'))
  assert os.listdir(tmp_path / 'old') == ['keep.txt']


STARGAN = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'configs', 'stargan.py')
MMAGAN = os.path.join(os.path.dirname(STARGAN), 'mmagan.py')


@pytest.mark.parametrize(
  'args,expected',
  [
    (['--generator=random.ckpt'], ['random.ckpt is not a PyTorch checkpoint', '--generator']),
    (['--generator=notes.txt'], ['notes.txt is not a PyTorch checkpoint', '--generator']),
    (['--generator=nope.ckpt'], ['checkpoint file not found: nope.ckpt', '--generator']),
    (
      ['--generator=sargan_G.ckpt', '--class_names=a,b,c,d,e,f,g'],
      ['--generator', 'holds a SARGAN generator'],
    ),
    (['--generator=D.ckpt'], ['D.ckpt holds a StarGAN/SARGAN discriminator', '--generator']),
    (['--generator=G.ckpt', f'--config={MMAGAN}:tiny'], ["model 'mmagan'", '--config']),
    (['--generator=G.ckpt', '--preset=sargan'], ['--preset sargan (7 names)', 'hold 5']),
    (
      ['--generator=G.ckpt', '--discriminator=D32.ckpt'],
      ['trained on 32 px', 'builds 16 px', '--config.data.image_size=32'],
    ),
  ],
)
def test_the_command_line_explains_a_wrong_file_in_one_line_and_leaves_nothing(
  args, expected, files
):
  cwd = os.path.dirname(files['G.ckpt'])
  config = [a for a in args if a.startswith('--config=')] or [f'--config={STARGAN}:tiny']
  rest = [a for a in args if not a.startswith('--config=')]
  result = _run(['-m', 'jaxpr_gan.tools.convert', *config, '--workdir=run', *rest], cwd)
  _user_error(result, *expected)
  assert not os.path.exists(os.path.join(cwd, 'run'))
