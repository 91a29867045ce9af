"""Editing multi-attribute (CelebA) StarGAN models: the official test's label vectors, the source
attributes from D or --attributes, on a tiny attribute-file run and on a converted official one."""

import os

import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
import torch  # test-only dependency (requirements-test.txt), as for the conversion itself

from configs import stargan as stargan_config
from input_pipeline import decoding
from input_pipeline import pipeline
from jaxpr_gan import attributes
from jaxpr_gan import errors
from jaxpr_gan import images
from jaxpr_gan import inference
from jaxpr_gan.evaluation import restore
from jaxpr_gan.tools import convert
from jaxpr_gan.tools import edit
from jaxpr_gan.tools import export
from tests import torch_official

NAMES = ('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Male', 'Young')  # the official c_dim 5


def _png(path, seed, size=16):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
  Image.fromarray(pixels).save(path)
  return path


def _official_create_labels(c_org, selected_attrs):
  """yunjey/stargan solver.py create_labels for CelebA, transcribed (torch, as there)."""
  hair = [i for i, a in enumerate(selected_attrs) if a in attributes.HAIR_COLOURS]
  out = []
  for i in range(len(selected_attrs)):
    c_trg = c_org.clone()
    if i in hair:
      c_trg[:, i] = 1
      for j in hair:
        if j != i:
          c_trg[:, j] = 0
    else:
      c_trg[:, i] = c_trg[:, i] == 0
    out.append(c_trg)
  return out


@pytest.fixture(scope='module')
def celeba_run(tmp_path_factory):
  """A tiny CelebA-layout data set (list_attr_celeba.txt) and a fresh StarGAN run on its five
  attributes (no training: random weights)."""
  tmp = tmp_path_factory.mktemp('celeba')
  columns = ['5_o_Clock_Shadow', *NAMES, 'Smiling']
  rows = [[-1, 1, -1, -1, 1, 1, 1], [1, -1, 1, -1, -1, -1, -1], [-1, -1, -1, 1, -1, 1, 1]]
  text = [str(len(rows)), ' '.join(columns)]
  for k, values in enumerate(rows):
    _png(str(tmp / 'img_align_celeba' / f'{k + 1:06d}.jpg'), k)
    text.append(f'{k + 1:06d}.jpg ' + ' '.join(f'{v:2d}' for v in values))
  (tmp / 'list_attr_celeba.txt').write_text('\n'.join(text) + '\n')
  config = stargan_config.get_config('tiny')
  config.data.update(
    source='attributes',
    attribute_file=str(tmp / 'list_attr_celeba.txt'),
    image_dir=str(tmp / 'img_align_celeba'),
    attributes=NAMES,
    num_classes=0,
    split='fraction',
  )
  assert tuple(pipeline.make_source(config.data, 'train').class_names) == NAMES
  workdir = str(tmp / 'run')
  restore.write_run(config, NAMES, workdir, step=1)
  faces = [_png(str(tmp / 'photos' / f'{n}.png'), 10 + k) for k, n in enumerate(['a', 'b'])]
  return workdir, faces


def _batch(paths):
  return np.stack([decoding.load_image(p, 16) for p in paths])


def _read(path):
  return np.asarray(Image.open(path).convert('RGB'))


def test_target_labels_follow_the_official_create_labels():
  source = np.array([[1, 0, 0, 0, 1]], np.float32)  # Black_Hair, Young
  blond = attributes.target_labels(source, NAMES.index('Blond_Hair'), NAMES)
  np.testing.assert_array_equal(blond, [[0, 1, 0, 0, 1]])  # hair exclusive, Male/Young kept
  np.testing.assert_array_equal(attributes.target_labels(source, 3, NAMES), [[1, 0, 0, 1, 1]])
  np.testing.assert_array_equal(attributes.target_labels(source, 4, NAMES), [[1, 0, 0, 0, 0]])
  np.testing.assert_array_equal(source, [[1, 0, 0, 0, 1]])  # the source is not changed
  # every target, on every one of the 32 possible sources, as the official code makes them
  every = np.array([[(k >> i) & 1 for i in range(5)] for k in range(32)], np.float32)
  for i, theirs in enumerate(_official_create_labels(torch.from_numpy(every), NAMES)):
    np.testing.assert_array_equal(attributes.target_labels(every, i, NAMES), theirs.numpy())


def test_which_runs_are_multi_attribute():
  assert attributes.is_multi_attribute(NAMES)  # an imported --preset celeba run
  assert attributes.is_multi_attribute(['glasses', 'hat'], 'attributes')  # any attribute file
  assert not attributes.is_multi_attribute(['neutral', 'happy'], 'synthetic')
  assert not attributes.is_multi_attribute(['Male', 'happy'])
  assert not attributes.is_multi_attribute([])


def test_edit_with_given_attributes_equals_the_generator_on_that_label_vector(
  celeba_run, tmp_path, capsys
):
  workdir, faces = celeba_run
  model = edit.load_model(workdir)
  assert model.multi_attribute and model.translate_labels is not None
  run = restore.restore(workdir)
  d_own = attributes.from_logits(
    run.objective.discriminator.apply({'params': run.d_params}, images.to_float(_batch(faces)))[1]
  )
  given = tuple(n for n, v in zip(NAMES, d_own[0]) if not v)  # differs from D's on every one
  request = edit.Request(targets=('Blond_Hair', 'Male', 'Young'), attributes=given)
  written, failed = edit.edit(model, faces, str(tmp_path), request, batch_size=2, progress=False)
  assert not failed and len(written) == 2 * 4
  out = capsys.readouterr().out
  assert f'{faces[0]}: source attributes {", ".join(given)} (from --attributes)' in out
  batch = _batch(faces)
  x = images.to_float(batch)
  source = np.tile(attributes.given(given, NAMES), (2, 1))
  for name in ('Blond_Hair', 'Male', 'Young'):
    labels = attributes.target_labels(source, NAMES.index(name), NAMES)
    ours, _ = model.translate_labels(x, labels)
    truth = run.objective.translate_labels(run.g_params, jnp.asarray(x), jnp.asarray(labels))
    assert np.abs(np.asarray(ours) - np.asarray(truth)).max() < 1e-5, name
    for i, path in enumerate(faces):
      stem = os.path.splitext(os.path.basename(path))[0]
      np.testing.assert_array_equal(
        _read(tmp_path / f'{stem}_{name}.png'), images.to_uint8(ours)[i]
      )
    one_hot, _ = model(batch, NAMES.index(name))  # the old path: not what edit now does
    assert np.abs(one_hot.astype(float) - images.to_uint8(ours)).max() > 1, name


def test_source_attributes_come_from_the_discriminator(celeba_run, tmp_path, capsys):
  workdir, faces = celeba_run
  model = edit.load_model(workdir)
  request = edit.Request(targets=('Male',))
  edit.edit(model, faces, str(tmp_path), request, batch_size=2, progress=False)
  out = capsys.readouterr().out
  run = restore.restore(workdir)
  x = images.to_float(_batch(faces))
  logits = np.asarray(run.objective.discriminator.apply({'params': run.d_params}, x)[1])
  assert np.abs(logits).min() > 1e-4  # no logit so near 0 that the sign is rounding
  source = (logits > 0).astype(np.float32)
  for i, path in enumerate(faces):
    expect = ', '.join(n for n, v in zip(NAMES, source[i]) if v) or 'none'
    assert f'{path}: source attributes {expect} (from D)' in out
  labels = attributes.target_labels(source, NAMES.index('Male'), NAMES)
  truth = run.objective.translate_labels(run.g_params, jnp.asarray(x), jnp.asarray(labels))
  got = np.stack([_read(tmp_path / f'{n}_Male.png') for n in ('a', 'b')])
  assert np.abs(got.astype(float) - images.to_uint8(truth)).max() <= 1


def test_exported_attribute_model_and_stray_attributes_are_one_line_errors(celeba_run, tmp_path):
  workdir, faces = celeba_run
  path = str(tmp_path / 'celeba.jaxgen')
  export.export_run(workdir, path)
  request = edit.Request(targets=('Blond_Hair',))
  with pytest.raises(errors.BadInput, match='one-hot targets only.*give its run directory'):
    edit.edit(export.load(path), faces, str(tmp_path / 'out'), request, progress=False)
  expressions = inference.Translator(None, ['neutral', 'happy'], 16, 'conditional', 'stargan')
  request = edit.Request(targets=('happy',), attributes=('Male',))
  with pytest.raises(errors.BadInput, match='does not edit attributes; drop --attributes'):
    edit.edit(expressions, faces, str(tmp_path / 'out'), request, progress=False)
  model = edit.load_model(workdir)
  with pytest.raises(errors.BadInput, match='--attributes: unknown Bald'):
    edit.edit(model, faces, str(tmp_path / 'out'), edit.Request(('Male',), attributes=('Bald',)))


def _torch_nchw(module, x, *rest):
  module.train()  # per-image InstanceNorm statistics, as the official test code runs
  with torch.no_grad():
    out = module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), *map(torch.from_numpy, rest))
  return out


def test_converted_official_celeba_model_edits_as_the_official_generator(tmp_path):
  g = torch_official.randomize(torch_official.StarGenerator(4, 5, 1), 0)
  d = torch_official.randomize(torch_official.StarDiscriminator(16, 4, 5, 4), 1)
  files = {}
  for role, module in (('generator', g), ('discriminator', d)):
    files[role] = str(tmp_path / f'{role}.ckpt')
    torch.save(module.state_dict(), files[role])
  workdir = str(tmp_path / 'run')
  convert.import_run(stargan_config.get_config('tiny'), files, None, workdir, preset='celeba')
  model = edit.load_model(workdir)
  assert model.class_names == list(NAMES) and model.multi_attribute
  faces = [_png(str(tmp_path / 'in' / f'{n}.png'), 20 + k) for k, n in enumerate('ab')]
  request = edit.Request(targets=('Blond_Hair',), attributes=('Black_Hair', 'Young'))
  edit.edit(model, faces, str(tmp_path / 'out'), request, batch_size=2, progress=False)
  x = images.to_float(_batch(faces))
  official = np.array([[0, 1, 0, 0, 1]] * 2, np.float32)
  labels = attributes.target_labels(
    np.tile(attributes.given(request.attributes, NAMES), (2, 1)), 1, NAMES
  )
  np.testing.assert_array_equal(labels, official)
  theirs = _torch_nchw(g, x, official).numpy().transpose(0, 2, 3, 1)
  ours, _ = model.translate_labels(x, labels)
  assert np.abs(np.asarray(ours) - theirs).max() < 1e-4
  assert np.std(theirs) > 0.1
  got = np.stack([_read(tmp_path / 'out' / f'{n}_Blond_Hair.png') for n in 'ab'])
  assert np.abs(got.astype(float) - images.to_uint8(theirs)).max() <= 1
  _, t_cls = _torch_nchw(d, x)  # the source attributes edit would take from D
  assert np.abs(model.source_logits(_batch(faces)) - t_cls.numpy()).max() < 1e-4
  # Imported from G alone, D is untrained: edit asks for --attributes instead of reading noise.
  alone = str(tmp_path / 'g_only')
  convert.import_run(
    stargan_config.get_config('tiny'), {'generator': files['generator']}, None, alone,
    preset='celeba',
  )  # fmt: skip
  with pytest.raises(errors.BadInput, match='imported without its discriminator.*--attributes'):
    edit.edit(
      edit.load_model(alone), faces, str(tmp_path / 'out2'), edit.Request(('Male',)),
      progress=False,
    )  # fmt: skip
