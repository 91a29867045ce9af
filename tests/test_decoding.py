"""Decoding of every image mode and bad file, and the image-folder layout checks."""

import functools
import io
import logging
import os
import pickle

import grain
import numpy as np
from PIL import Image
from PIL import ImageFile
import pytest

from input_pipeline.decoding import decode_image
from input_pipeline.decoding import DecodeError
from input_pipeline.decoding import load_image
from input_pipeline.folders import DatasetLayoutError
from input_pipeline.folders import decode_record
from input_pipeline.folders import EXPECTED_FOLDER_LAYOUT
from input_pipeline.folders import ImageFolderSource
from input_pipeline.folders import scan_image_folder
from tests import image_fixtures as fx

S = 40  # fixture size; decoding at the same size keeps flat colour regions exact


@pytest.fixture(scope='module')
def mixed(tmp_path_factory):
  root = tmp_path_factory.mktemp('mixed')
  return dict(fx.make_mixed_image_folder(root, size=S), root=str(root))


def _decode(mixed, kind, size=S):
  image = load_image(mixed['paths'][kind], size)
  assert image.dtype == np.uint8 and image.shape == (size, size, 3)
  return image.astype(int)


def _assert_colour(pixel, colour, tol=8):
  assert np.abs(np.asarray(pixel) - colour).max() <= tol, (pixel, colour)


# Pixels well inside the left and right halves of a RED | BLUE image of size S.
LEFT, RIGHT = (S // 2, S // 8), (S // 2, S - 1 - S // 8)


@pytest.mark.parametrize(
  'kind,tol',
  [
    ('rgb_png', 0),
    ('palette_png', 0),
    ('wide_bmp', 0),
    ('tall_webp', 0),  # lossless
    ('rgb_jpeg', 8),
    ('cmyk_jpeg', 8),
  ],
)
def test_red_blue_images_keep_their_colours(mixed, kind, tol):
  image = _decode(mixed, kind)
  for row in (2, S // 2, S - 3):  # top to bottom: a centre crop leaves no green margin
    _assert_colour(image[row, S // 8], fx.RED, tol)
    _assert_colour(image[row, S - 1 - S // 8], fx.BLUE, tol)
  if tol == 0:  # lossless, same size: no resampling at all
    np.testing.assert_array_equal(image, fx.halves(S, S))


def test_non_square_images_are_centre_cropped_exactly(mixed):
  # wide.bmp is GREEN | RED | BLUE | GREEN in quarters: only the middle two may remain.
  for kind in ('wide_bmp', 'tall_webp'):
    image = _decode(mixed, kind)
    assert not np.any(np.all(image == fx.GREEN, axis=-1)), kind


def test_grayscale_is_replicated_to_three_equal_channels(mixed):
  image = _decode(mixed, 'gray_png')
  assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(
    image[..., 1], image[..., 2]
  )
  assert image[LEFT][0] == fx.GRAY_LEFT and image[RIGHT][0] == fx.GRAY_RIGHT


@pytest.mark.parametrize('kind', ['rgba_png', 'palette_transparent_png'])
def test_transparent_areas_become_white(mixed, kind):
  image = _decode(mixed, kind)
  _assert_colour(image[LEFT], fx.RED, 0)
  _assert_colour(image[RIGHT], (255, 255, 255), 0)  # not the green hidden under alpha 0


def test_16_bit_grayscale_is_rescaled_not_clipped(mixed):
  assert Image.open(mixed['paths']['gray16_png']).mode == 'I;16'
  image = _decode(mixed, 'gray16_png')
  stripes = [image[S // 2, x] for x in (S // 6, S // 2, 5 * S // 6)]  # 0, 32768, 65535
  assert [tuple(p) for p in stripes] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_cmyk_red_stays_red_after_resizing(mixed):
  image = _decode(mixed, 'cmyk_jpeg', size=16)
  r, g, b = image[8, 2]
  assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize('size', [S, 20])
def test_exif_orientation_is_applied(mixed, size):
  # Upright centre square: green top-left, red top-right, blue bottom half. Ignoring the tag
  # would give red | blue side by side; turning anticlockwise or mirroring moves the green.
  image = _decode(mixed, 'exif_rotated_jpeg', size)
  q = size // 4
  _assert_colour(image[q, q], fx.GREEN, 12)
  _assert_colour(image[q, size - 1 - q], fx.RED, 12)
  _assert_colour(image[size - 1 - q, q], fx.BLUE, 12)
  _assert_colour(image[size - 1 - q, size - 1 - q], fx.BLUE, 12)


@pytest.mark.parametrize(
  'kind,reason',
  [
    ('truncated_jpeg', 'truncated'),
    ('empty_jpeg', 'empty file'),
    ('text_jpeg', 'not an image'),
  ],
)
def test_bad_files_raise_decode_error_naming_the_path(mixed, kind, reason):
  path = mixed['paths'][kind]
  with pytest.raises(DecodeError) as err:
    load_image(path, S)
  assert str(err.value).startswith(path + ':') and reason in str(err.value)


def test_missing_file_raises_decode_error_naming_the_path(tmp_path):
  path = str(tmp_path / 'gone.png')
  with pytest.raises(DecodeError, match='gone.png: cannot read file'):
    load_image(path, S)


def test_truncated_images_are_not_globally_allowed():
  assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def _encode(img, fmt, **kwargs):
  buf = io.BytesIO()
  img.save(buf, fmt, **kwargs)
  return buf.getvalue()


@pytest.mark.parametrize(
  'mode,dtype,values,expected',
  [
    ('I;16B', '>u2', [0, 32768, 65535], [0, 128, 255]),
    ('I', np.int32, [0, 32768, 65535], [0, 128, 255]),
    ('F', np.float32, [0.0, 0.5, 1.0], [0, 128, 255]),  # max <= 1: read as 0..1
    ('F', np.float32, [0.0, 100.0, 300.0], [0, 100, 255]),  # else as 0..255, clipped
    ('1', bool, [0, 1, 1], [0, 255, 255]),
  ],
)
def test_other_modes_via_tiff(mode, dtype, values, expected):
  arr = np.repeat(np.array(values, dtype), 4)[None].repeat(12, axis=0)  # 3 stripes, 12x12
  data = _encode(Image.fromarray(arr), 'TIFF')
  assert Image.open(io.BytesIO(data)).mode == mode
  image = decode_image(data, 12)
  assert [tuple(image[6, 4 * i + 2]) for i in range(3)] == [(e, e, e) for e in expected]


def test_la_image_composites_onto_white():
  img = Image.new('LA', (8, 8), (0, 255))
  img.paste((0, 0), (4, 0, 8, 8))  # right half black but transparent
  image = decode_image(_encode(img, 'PNG'), 8)
  assert tuple(image[4, 1]) == (0, 0, 0) and tuple(image[4, 6]) == (255, 255, 255)


def test_large_jpeg_reduced_decode_matches_full_decode():
  # 800x600 RED | BLUE with a green square; decoding at 32 px uses JPEG draft (1/8) mode.
  arr = fx.halves(800, 600)
  arr[100:200, 300:400] = fx.GREEN
  data = _encode(Image.fromarray(arr), 'JPEG', quality=95)
  ref = (
    Image.open(io.BytesIO(data))
    .convert('RGB')
    .resize((32, 32), Image.Resampling.LANCZOS, box=(100, 0, 700, 600))
  )
  image = decode_image(data, 32)
  assert np.abs(image.astype(int) - np.asarray(ref, int)).mean() < 3
  box = (300, 100, 400, 200)  # exactly the green square
  crop = decode_image(data, 10, crop_box=box).astype(int)
  _assert_colour(crop[2:8, 2:8].reshape(-1, 3).mean(0), fx.GREEN, 12)


def test_crop_box_selects_region_in_upright_coordinates(mixed):
  data = open(mixed['paths']['exif_rotated_jpeg'], 'rb').read()
  # Upright the image is S wide and 2S tall; its bottom half is blue.
  image = decode_image(data, 8, crop_box=(0, S + 4, S, 2 * S - 4)).astype(int)
  _assert_colour(image.reshape(-1, 3).mean(0), fx.BLUE, 12)
  with pytest.raises(DecodeError, match='outside'):
    decode_image(data, 8, crop_box=(0, 0, 2 * S, S))  # wider than the upright image


def test_decompression_bomb_is_a_decode_error(mixed, monkeypatch):
  data = open(mixed['paths']['rgb_png'], 'rb').read()
  monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', S * S // 4)  # S*S > 2 * max: an error
  with pytest.raises(DecodeError, match='too large'):
    decode_image(data, 8)


def test_formats_outside_the_allow_list_are_rejected():
  data = _encode(Image.new('RGB', (8, 8)), 'PPM')
  with pytest.raises(DecodeError, match='not an image in a supported format'):
    decode_image(data, 8)


def test_bad_size_is_a_value_error():
  with pytest.raises(ValueError):
    decode_image(b'x', 0)


# ---------------------------------------------------------------- folders


def test_scan_mixed_folder(mixed):
  class_names, files = scan_image_folder(mixed['root'])
  assert class_names == mixed['class_names'] == ['angry', 'happy', 'neutral']
  assert len(files) == mixed['num_good'] + mixed['num_bad'] == 14
  # Sorted by class, then file name; hidden, .txt and root-level entries are absent.
  expected = sorted(
    (p, class_names.index(os.path.basename(os.path.dirname(p))))
    for k, p in mixed['paths'].items()
    if k not in ('readme', 'hidden_file', 'hidden_dir')
  )
  assert files == sorted(expected, key=lambda f: (f[1], os.path.basename(f[0])))
  assert [os.path.basename(p) for p, label in files if label == 1] == [
    'gray.png',
    'rgb.JPG',
    'rgb.png',
    'truncated.jpg',
    'wide.bmp',
  ]


def test_image_folder_source_and_decode_record(mixed, caplog):
  source = ImageFolderSource(mixed['root'])
  assert len(source) == 14 and source.class_names == ('angry', 'happy', 'neutral')
  clone = pickle.loads(pickle.dumps(source))
  assert len(clone) == 14 and clone[3] == source[3]
  bad = set(mixed['bad_paths'])
  caplog.set_level(logging.WARNING)
  for i in range(len(source)):
    record = source[i]
    assert set(record) == {'path', 'label'} and record['label'].dtype == np.int32
    out = decode_record(record, 16)
    assert out['image'].dtype == np.uint8 and out['image'].shape == (16, 16, 3)
    assert out['label'].dtype == np.int32 and isinstance(out['valid'], np.bool_)
    folder = os.path.basename(os.path.dirname(record['path']))
    assert out['label'] == source.class_names.index(folder)
    assert bool(out['valid']) == (record['path'] not in bad)
    if record['path'] in bad:
      assert not out['image'].any()
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert all(any(p in w for w in warnings) for p in bad) and len(warnings) == 3


def test_grain_pipeline_drops_invalid_records(mixed):
  ds = (
    grain.MapDataset.source(ImageFolderSource(mixed['root']))
    .map(functools.partial(decode_record, size=8))
    .filter(lambda r: bool(r['valid']))
  )
  labels = sorted(int(r['label']) for r in ds.to_iter_dataset())
  assert labels == [0] * 4 + [1] * 4 + [2] * 3  # good images per class: angry, happy, neutral


def _assert_layout_error(root, *needles):
  with pytest.raises(DatasetLayoutError) as err:
    scan_image_folder(str(root))
  message = str(err.value)
  assert EXPECTED_FOLDER_LAYOUT in message
  for needle in (str(root),) + needles:
    assert needle in message, (needle, message)
  return message


def test_layout_error_missing_root(tmp_path):
  _assert_layout_error(tmp_path / 'nope', 'does not exist')


def test_layout_error_root_is_a_file(tmp_path):
  (tmp_path / 'file.png').write_bytes(b'')
  _assert_layout_error(tmp_path / 'file.png', 'not a directory')


def test_layout_error_empty_root(tmp_path):
  (tmp_path / '.hidden').mkdir()  # hidden folders are not classes
  _assert_layout_error(tmp_path, 'no class subfolders')


def test_layout_error_images_directly_in_root(tmp_path):
  for name in ('a.png', 'b.jpg'):
    (tmp_path / name).write_bytes(b'')
  _assert_layout_error(tmp_path, '2 image files directly in it', 'no class subfolders')


def test_layout_error_class_without_images(tmp_path):
  fx_good = fx.good_images(8)
  (tmp_path / 'happy').mkdir()
  (tmp_path / 'happy' / 'a.png').write_bytes(fx_good['rgb_png'][1])
  (tmp_path / 'sad').mkdir()
  (tmp_path / 'sad' / 'readme.txt').write_text('only notes')
  (tmp_path / 'sad' / '.hidden.png').write_bytes(fx_good['rgb_png'][1])
  message = _assert_layout_error(tmp_path, str(tmp_path / 'sad'), 'no image files')
  assert str(tmp_path / 'happy') not in message


def test_extensions_match_case_insensitively(tmp_path):
  (tmp_path / 'c').mkdir()
  for name in ('a.JPEG', 'b.Png', 'c.WEBP', 'd.bmp', 'e.gif', 'f.tiff', 'g.jpg.txt'):
    (tmp_path / 'c' / name).write_bytes(b'')
  _, files = scan_image_folder(str(tmp_path))
  assert [os.path.basename(p) for p, _ in files] == ['a.JPEG', 'b.Png', 'c.WEBP', 'd.bmp']
