"""Tests for the procedural expression-face benchmark (input_pipeline/synthetic.py)."""

import os
import pickle

import numpy as np
from PIL import Image
import pytest

from input_pipeline import synthetic as syn

SAMPLE_IDS = (0, 17, 58, 140, 203, 249)  # includes the lowest-contrast identity (140)


def _mad(a, b):
  return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


def test_identity_splits_are_disjoint_and_cover_all():
  train, test, all_ = (syn.identity_ids(s) for s in ('train', 'test', 'all'))
  assert len(train) == 200 and len(test) == 50 and len(all_) == syn.NUM_IDENTITIES == 250
  assert set(train).isdisjoint(test)
  assert sorted(set(train) | set(test)) == list(range(250)) == all_.tolist()
  assert train[0] == 0 and train[-1] == 199 and test[0] == 200 and test[-1] == 249
  with pytest.raises(ValueError):
    syn.identity_ids('val')


def test_expression_params_blend_linearly_from_neutral():
  assert syn.EXPRESSIONS == (
    'neutral',
    'happy',
    'sad',
    'angry',
    'surprised',
    'fearful',
    'disgusted',
  )
  neutral = syn.expression_params('neutral')
  for key in ('mouth_curve', 'mouth_open', 'brow_tilt', 'brow_height', 'eye_open'):
    assert key in neutral
  for e in range(7):
    assert syn.expression_params(e, 0.0) == neutral  # exactly, not approximately
    full, half = syn.expression_params(e), syn.expression_params(syn.EXPRESSIONS[e], 0.5)
    for k in neutral:
      assert half[k] == pytest.approx((neutral[k] + full[k]) / 2)
  happy, sad, angry = (syn.expression_params(e) for e in ('happy', 'sad', 'angry'))
  assert happy['mouth_curve'] > 0.5 and sad['mouth_curve'] < -0.5
  assert sad['brow_tilt'] > 0.5 and angry['brow_tilt'] < -0.5 and angry['brow_height'] < 0
  surprised = syn.expression_params('surprised')
  assert surprised['mouth_open'] == 1.0 and surprised['eye_open'] > neutral['eye_open']
  protos = np.array([list(syn.expression_params(e).values()) for e in range(7)])
  gaps = np.abs(protos[:, None] - protos[None]).sum(-1) + np.eye(7) * 99
  assert gaps.min() > 1.0  # every prototype is far from every other one
  for bad in (('joyful', 1.0), (7, 1.0), (1, 1.5), (1, -0.1)):
    with pytest.raises(ValueError):
      syn.expression_params(*bad)


@pytest.mark.parametrize('style', syn.STYLES)
def test_intensity_zero_renders_exactly_neutral(style):
  neutral = syn.render_face(58, 'neutral', 1.0, style, 32)
  for e in range(1, 7):
    assert np.array_equal(syn.render_face(58, e, 0.0, style, 32), neutral)
    assert not np.array_equal(syn.render_face(58, e, 1.0, style, 32), neutral)


def test_intensity_moves_monotonically_away_from_neutral():
  neutral = syn.render_face(3, 0, size=64)
  dists = [_mad(syn.render_face(3, 'happy', t, size=64), neutral) for t in (0, 0.25, 0.5, 1)]
  assert dists[0] == 0.0 and dists[1] < dists[2] < dists[3]


@pytest.mark.parametrize('size', [16, 32, 64, 100, 128, 256])
def test_output_shape_and_dtype(size):
  for style in syn.STYLES:
    img = syn.render_face(249, 'fearful', 0.7, style, size)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    assert img.std() > 20  # a picture, not a flat fill


def test_rendering_is_deterministic():
  a = syn.render_face(140, 'disgusted', 0.6, 'photo', 64)
  b = syn.render_face(140, 'disgusted', 0.6, 'photo', 64)
  assert a.tobytes() == b.tobytes()
  s1 = syn.SyntheticFaces('test', 32, 7, 'anime', (0.3, 0.9), seed=3)
  s2 = syn.SyntheticFaces('test', 32, 7, 'anime', (0.3, 0.9), seed=3)
  for i in (0, 13, 349):
    x, y = s1[i], s2[i]
    assert x['image'].tobytes() == y['image'].tobytes() == s1[i]['image'].tobytes()
    assert x['intensity'] == y['intensity']


def test_source_length_and_index_mapping():
  src = syn.SyntheticFaces('train', size=16, num_classes=5)
  assert len(src) == 1000 and src.class_names == syn.EXPRESSIONS[:5]
  item = src[7]
  assert item['identity'] == 1 and item['label'] == 2 and item['style'] == 0
  assert item['image'].shape == (16, 16, 3) and item['image'].dtype == np.uint8
  assert item['label'].dtype == np.int32 and item['identity'].dtype == np.int32
  assert item['style'].dtype == np.int32 and item['intensity'].dtype == np.float32
  assert src[999]['identity'] == 199 and src[999]['label'] == 4
  test7 = syn.SyntheticFaces('test', size=16, num_classes=7, style='photo')
  assert len(test7) == 350 and test7.class_names == syn.EXPRESSIONS
  assert test7.params(0) == (200, 0, 0.0) and test7.params(349) == (249, 6, 1.0)
  assert test7[0]['style'] == 1
  with pytest.raises(IndexError):
    src[1000]
  for bad in (1, 8):
    with pytest.raises(ValueError):
      syn.SyntheticFaces(num_classes=bad)


def test_sampled_intensities():
  src = syn.SyntheticFaces('train', size=16, num_classes=5, intensity_range=(0.2, 0.8), seed=1)
  ts = np.array([src.params(i)[2] for i in range(500)])
  labels = np.arange(500) % 5
  assert np.all(ts[labels == 0] == 0.0)  # neutral has no intensity
  moved = ts[labels != 0]
  assert moved.min() >= 0.2 and moved.max() <= 0.8 and moved.std() > 0.1
  other = syn.SyntheticFaces('train', size=16, intensity_range=(0.2, 0.8), seed=2)
  assert other.params(1)[2] != src.params(1)[2]
  assert syn.SyntheticFaces('train', size=16).params(1)[2] == 1.0


def test_item_equals_truth_renderer():
  src = syn.SyntheticFaces(
    'test', size=32, num_classes=7, style='photo', intensity_range=(0.0, 1.0), seed=5
  )
  for i in (3, 101, 222):
    item = src[i]
    truth = syn.render_face(
      int(item['identity']), int(item['label']), float(item['intensity']), 'photo', 32
    )
    assert np.array_equal(item['image'], truth)


def test_source_pickles_small_and_works_in_grain():
  src = syn.SyntheticFaces('test', size=32, num_classes=5, intensity_range=(0.5, 1.0))
  blob = pickle.dumps(src)
  assert len(blob) < 2000
  clone = pickle.loads(blob)
  assert np.array_equal(clone[42]['image'], src[42]['image'])
  grain = pytest.importorskip('grain')
  ds = grain.MapDataset.source(src)
  assert len(ds) == 250 and np.array_equal(ds[42]['image'], src[42]['image'])


def test_different_identities_differ():
  imgs = [syn.render_face(i, 'neutral', size=32) for i in range(40)]
  dists = [_mad(imgs[i], imgs[j]) for i in range(40) for j in range(i + 1, 40)]
  assert min(dists) > 8.0  # measured minimum over 0..249 neighbours: ~20


@pytest.mark.parametrize('size', [32, 128])
def test_expression_changes_only_the_expression_region(size):
  box = np.zeros((size, size), bool)  # eyes, brows, mouth live here (measured: y .37-.91,
  box[int(0.3 * size) : int(0.95 * size), int(0.15 * size) : int(0.85 * size)] = True  # x .22-.78)
  for style in syn.STYLES:
    for ident in SAMPLE_IDS[:3]:
      neutral = syn.render_face(ident, 0, style=style, size=size)
      for e in range(1, 7):
        changed = np.any(syn.render_face(ident, e, style=style, size=size) != neutral, -1)
        assert 0.01 < changed.mean() < 0.3  # measured at most ~0.16
        assert not changed[~box].any()  # hair, face outline, background untouched


@pytest.mark.parametrize('style,threshold', [('anime', 0.8), ('photo', 0.35)])
def test_expressions_distinguishable_at_32px(style, threshold):
  # Mean abs difference over the whole image; measured minima over 50 identities:
  # anime 1.21, photo 0.54 (the changed pixels are < 16% of the image).
  for ident in SAMPLE_IDS:
    imgs = [syn.render_face(ident, e, style=style, size=32) for e in range(7)]
    for a in range(7):
      for b in range(a + 1, 7):
        assert _mad(imgs[a], imgs[b]) > threshold, (ident, a, b)


def test_styles_differ():
  for ident in SAMPLE_IDS:
    anime = syn.render_face(ident, 'happy', style='anime', size=32)
    photo = syn.render_face(ident, 'happy', style=1, size=32)
    assert _mad(anime, photo) > 4.0  # measured minimum over 150 faces: 6.5


def test_cli_writes_class_folders_and_wraps(tmp_path, capsys):
  out = str(tmp_path / 'faces')
  n = 253  # test split, 5 classes: 250 faces, so the last 3 wrap around
  assert syn.main(['--out', out, '--num', str(n), '--size', '16', '--split', 'test']) == 0
  assert sorted(os.listdir(out)) == sorted(syn.EXPRESSIONS[:5])
  files = {name: sorted(os.listdir(os.path.join(out, name))) for name in os.listdir(out)}
  assert sum(len(v) for v in files.values()) == n
  assert files['neutral'][:2] == ['000000.png', '000005.png'] and '000250.png' in files['neutral']
  assert '000252.png' in files['sad'] and '000004.png' in files['surprised']
  first = np.asarray(Image.open(os.path.join(out, 'neutral', '000000.png')))
  wrapped = np.asarray(Image.open(os.path.join(out, 'neutral', '000250.png')))
  assert first.shape == (16, 16, 3) and np.array_equal(first, wrapped)
  assert np.array_equal(first, syn.render_face(200, 0, size=16))
  progress = [line for line in capsys.readouterr().out.splitlines() if 'faces written' in line]
  assert 9 <= len(progress) <= 11 and progress[-1].startswith(f'{n}/{n}')


def test_contact_sheet(tmp_path):
  path = str(tmp_path / 'sheet.png')
  sheet = syn.write_contact_sheet(path, identities=(1, 2), size=16)
  rows = 2 * len(syn.STYLES) + 2  # identities x styles, then happy/surprised ramps
  assert sheet.shape == (2 + rows * 18, 2 + 7 * 18, 3)
  assert np.array_equal(np.asarray(Image.open(path)), sheet)


def test_rendered_faces_are_kept_and_handed_out_as_copies():
  faces = syn.SyntheticFaces('train', size=16, num_classes=3, intensity_range=(0.2, 1.0))
  first = faces[7]['image']
  ident, expr, t = faces.params(7)
  np.testing.assert_array_equal(first, syn.render_face(ident, expr, t, faces.style, 16))
  first[:] = 0  # a caller writing into its image must not change what the next one gets
  again = faces[7]['image']
  np.testing.assert_array_equal(again, syn.render_face(ident, expr, t, faces.style, 16))
  assert again is not faces[7]['image']
