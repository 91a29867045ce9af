"""Using a trained generator: the exported file, and the edit command on every kind of file."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from configs import cyclegan as cyclegan_config
from configs import sargan as sargan_config
from configs import twocet as twocet_config
from input_pipeline import decoding
from jaxpr_gan import images
from jaxpr_gan.evaluation import restore
from jaxpr_gan.tools import edit
from jaxpr_gan.tools import export
from tests import image_fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPRESSIONS = ['neutral', 'happy', 'sad', 'angry', 'surprised']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """Randomly initialised tiny runs of the three families, and their exported files."""
  tmp = tmp_path_factory.mktemp('runs')
  made = {}
  for name, config, classes in [
    ('sargan', sargan_config.get_config('tiny'), EXPRESSIONS),
    ('cyclegan', cyclegan_config.get_config('tiny'), ['photo', 'anime']),
    ('twocet', twocet_config.get_config('tiny'), EXPRESSIONS),
  ]:
    workdir = str(tmp / name)
    restore.write_run(config, classes, workdir, step=3)
    meta = export.export_run(workdir, str(tmp / f'{name}.jaxgen'))
    made[name] = (workdir, str(tmp / f'{name}.jaxgen'), meta)
  return made


def _faces(n, size, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_exported_file_equals_the_framework_outputs_for_every_family(runs):
  for name, (workdir, path, meta) in runs.items():
    run = restore.restore(workdir)
    objective, g_params, class_names, step = run.objective, run.g_params, run.class_names, run.step
    assert step == 3 and meta['class_names'] == list(class_names)
    assert meta['image_size'] == 16 and 'uint8 / 127.5 - 1' in meta['normalisation']
    assert 'cpu' in meta['platforms']
    model = export.load(path)
    faces = _faces(3, 16)  # a batch size the export never saw: the batch is symbolic
    x = images.to_float(jnp.asarray(faces))
    ref = _faces(1, 16, seed=1)
    out, mask = model(faces, target=1, rho=0.5, reference=ref)
    if name == 'sargan':
      truth = objective.translate(g_params, x, jnp.full((3,), 1))
      assert meta['has_mask'] and mask.shape == (3, 16, 16)
      assert 0 <= mask.min() and mask.max() <= 1 and mask.std() > 0
    elif name == 'cyclegan':
      truth = objective.translate(g_params, x, 'a2b')  # target 1: to the second domain
      back, _ = model(faces, target=0)
      back_truth = images.to_uint8(objective.translate(g_params, x, 'b2a'))
      assert np.abs(back.astype(float) - back_truth).max() <= 1
    else:
      truth = objective.transfer(
        g_params, x, images.to_float(jnp.asarray(np.repeat(ref, 3, 0))), 0.5
      )
    truth = images.to_uint8(truth).astype(float)
    # uint8 rounding of two float paths that agree to ~1e-6: at most one level apart
    assert np.abs(out.astype(float) - truth).max() <= 1, name
    assert np.mean(out.astype(float) != truth) < 0.01, name
    if name != 'sargan':
      assert not meta['has_mask'] and not mask.any()


def test_edit_folder_of_every_file_kind_reports_bad_files_and_goes_on(runs, tmp_path):
  folder = image_fixtures.make_mixed_image_folder(tmp_path / 'photos', size=40)
  model = edit.load_model(runs['sargan'][0])
  out = tmp_path / 'out'
  inputs = edit.list_inputs(str(tmp_path / 'photos'))
  written, failed = edit.edit(
    model, inputs, str(out), edit.Request(('happy', 'sad'), mask=True), batch_size=4, progress=False
  )
  num_good = folder['num_good']
  assert len(failed) == folder['num_bad'] == 3
  for bad in folder['bad_paths']:
    assert any(bad in line for line in failed)
    assert bad in (out / 'failed.txt').read_text()
  strips = sorted(p for p in written if p.endswith('_strip.png'))
  assert len(strips) == num_good and len(written) == num_good * 5
  # The result on disk is the model's output on the decoded, centre-cropped input.
  wide = np.asarray(Image.open(out / 'wide_happy.png'))
  x = decoding.load_image(folder['paths']['wide_bmp'], 16)
  expected, _ = model(x[None], model.target_index('happy'))
  np.testing.assert_array_equal(wide, expected[0])
  assert np.asarray(Image.open(out / 'wide_happy_mask.png')).shape == (16, 16, 3)
  strip = Image.open(strips[0])
  assert strip.width >= 512 and strip.height < strip.width  # 2 rows of 3 cells, enlarged


def test_edit_errors_say_what_exists(runs, tmp_path):
  model = edit.load_model(runs['sargan'][1])  # the exported file
  photo = tmp_path / 'me.png'
  Image.fromarray(_faces(1, 30)[0]).save(photo)
  with pytest.raises(ValueError, match='knows neutral, happy, sad, angry, surprised'):
    edit.edit(model, [str(photo)], str(tmp_path / 'o'), edit.Request(('joyful',)))
  with pytest.raises(ValueError, match='no intensity input'):
    edit.edit(model, [str(photo)], str(tmp_path / 'o'), edit.Request(('happy',), (0.5, 1.0)))
  with pytest.raises(ValueError, match='--reference'):
    edit.edit(edit.load_model(runs['twocet'][0]), [str(photo)], str(tmp_path / 'o'), edit.Request())
  with pytest.raises(FileNotFoundError, match='runs beside it: cyclegan, sargan, twocet'):
    edit.load_model(os.path.join(os.path.dirname(runs['sargan'][0]), 'stargan'))
  with pytest.raises(ValueError, match='saved steps: \\[3\\]'):
    edit.load_model(runs['sargan'][0], step=7)


def test_edit_command_line(runs, tmp_path):
  photo = tmp_path / 'me.jpg'
  Image.fromarray(_faces(1, 48)[0]).save(photo)
  out = tmp_path / 'edits'
  cmd = [
    sys.executable,
    '-m',
    'jaxpr_gan.tools.edit',
    '--model',
    runs['cyclegan'][1],
    '--input',
    str(photo),
    '--out',
    str(out),
    '--box',
    '4,4,44,44',
  ]
  done = subprocess.run(
    cmd,
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, 'JAX_PLATFORMS': 'cpu'},
  )
  assert done.returncode == 0, done.stderr
  assert '1 of 1 images edited' in done.stdout
  assert sorted(os.listdir(out)) == ['me_anime.png', 'me_strip.png']
  bad = subprocess.run(
    cmd[:-2] + ['--target', 'cat'],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, 'JAX_PLATFORMS': 'cpu'},
  )
  assert bad.returncode == 2 and "unknown target 'cat'" in bad.stderr
  assert 'photo, anime' in bad.stderr


_NO_FLAX = """
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in ('flax', 'jaxpr_gan', 'ml_collections', 'optax', 'orbax',
                              'tensorflow', 'configs', 'input_pipeline'):
      raise ImportError(f'{name} is not installed here')
sys.meta_path.insert(0, _Blocked())
"""


def test_the_documented_loader_runs_with_jax_numpy_and_flatbuffers_alone(runs, tmp_path):
  """docs/using.md's lines for an exported file, run as they are in a process that cannot
  import Flax or this code."""
  with open(os.path.join(ROOT, 'docs', 'using.md')) as f:
    text = f.read()
  start = text.index('```python\n', text.index('It needs neither this code nor Flax')) + 10
  snippet = text[start : text.index('```', start)]
  assert 'flatbuffers' in text[text.index('It needs neither') : start]
  _, path, _ = runs['sargan']
  snippet = snippet.replace("'mmagan_quick.jaxgen'", repr(path))
  faces = 'import numpy as np\nfaces = np.zeros((3, 16, 16, 3), np.uint8)\n'
  check = (
    "\nassert 'flax' not in sys.modules and 'jaxpr_gan' not in sys.modules\n"
    "print('shapes', image.shape, mask.shape)\n"
  )
  program = _NO_FLAX + faces + snippet + check
  result = subprocess.run(
    [sys.executable, '-c', program], capture_output=True, text=True, cwd=str(tmp_path), timeout=300
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'shapes (3, 16, 16, 3) (3, 16, 16)' in result.stdout
  blocked = subprocess.run(
    [sys.executable, '-c', _NO_FLAX + 'import flax'], capture_output=True, text=True, timeout=60
  )
  assert blocked.returncode == 1 and 'flax is not installed here' in blocked.stderr
