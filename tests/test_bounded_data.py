"""A bounded input pipeline: broken folders stop with a named error, big images are skipped
unread, and the inspect and prepare tools report every bad file and write whole files."""

import concurrent.futures
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
from PIL import Image
from PIL import ImageFile
import pytest

from configs import stargan as stargan_config
from input_pipeline import decoding
from input_pipeline import folders
from input_pipeline import groups
from input_pipeline import inspect as inspect_lib
from input_pipeline import pipeline
from input_pipeline import prepare
from jaxpr_gan import errors
from jaxpr_gan.training import samples
from tests import conftest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIG = 12000  # a 12000x12000 PNG: 144 MP, under Pillow's own bomb check (about 179 MP)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
  return struct.pack('>I', len(data)) + tag + data + struct.pack('>I', zlib.crc32(tag + data))


def _flat_png(width: int, height: int, rgb=(200, 40, 40), idat: bool = True) -> bytes:
  """An RGB PNG of one colour, compressed a block of rows at a time (never the whole image in
  memory); without `idat`, only the header of one (a bomb that claims its size)."""
  header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
  chunks = [_png_chunk(b'IHDR', header)]
  if idat:
    rows = (b'\x00' + bytes(rgb) * width) * 100
    z = zlib.compressobj(6)
    body = [z.compress(rows) for _ in range(height // 100)]
    body.append(z.compress(rows[: (height % 100) * (1 + 3 * width)]) + z.flush())
    chunks.append(_png_chunk(b'IDAT', b''.join(body)))
  return b'\x89PNG\r\n\x1a\n' + b''.join(chunks) + _png_chunk(b'IEND', b'')


def _encode(array: np.ndarray, fmt: str) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, fmt)
  return buf.getvalue()


def _write(path, data: bytes) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(data)
  return str(path)


def _good_folder(root, per_class: int = 3) -> list[str]:
  """root/a and root/b with `per_class` small good PNGs each; -> their paths."""
  rng = np.random.default_rng(0)
  return [
    _write(
      os.path.join(root, c, f'{k}.png'),
      _encode(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), 'PNG'),
    )
    for c in ('a', 'b')
    for k in range(per_class)
  ]


def _broken_folder(root, per_class: int = 3) -> list[str]:
  """root/a and root/b holding only files that do not decode; -> their paths."""
  return [
    _write(os.path.join(root, c, f'{k}.jpg'), b'not a picture %d' % k)
    for c in ('a', 'b')
    for k in range(per_class)
  ]


def _config(root, **data):
  config = stargan_config.get_config('tiny')
  config.batch_size = 4
  settings = dict(num_classes=2, image_size=16, random_flip=False, num_workers=0)
  config.data.update(source='folder', train_dir=str(root), test_dir=str(root), **settings)
  config.data.update(**data)
  return config


@pytest.fixture(scope='module')
def big_png(tmp_path_factory) -> str:
  return _write(tmp_path_factory.mktemp('big') / 'big.png', _flat_png(BIG, BIG))


def _no_valid_data(config, source) -> str:
  it = iter(pipeline.create_train_dataset(config, source))
  with pytest.raises(pipeline.NoValidData) as err:
    next(it)
  assert isinstance(err.value, errors.UserError)
  message = str(err.value)
  assert '\n' not in message
  return message


# ---------------------------------------------------------------- bounded waits


@pytest.mark.parametrize('num_workers', [0, 2])
def test_all_broken_training_folder_stops_after_one_pass(tmp_path, num_workers):
  paths = _broken_folder(tmp_path)
  config = _config(tmp_path, num_workers=num_workers)
  message = _no_valid_data(config, pipeline.make_source(config.data, 'train'))
  assert message.startswith(f'no decodable image in 6 examples read from {tmp_path}, in a row')
  assert 'config.data.max_consecutive_bad=0: one pass over its 6 items' in message
  # The first 3 reasons, each naming its file (from the worker processes too).
  reasons = message.split('first reasons: ')[1].split(' | ')
  assert len(reasons) == 3
  assert all(any(r.startswith(p + ': not an image') for p in paths) for r in reasons)


def test_max_consecutive_bad_sets_the_bound(tmp_path):
  _good_folder(tmp_path, per_class=2)
  bad = _write(tmp_path / 'a' / 'broken.png', b'broken')
  config = _config(tmp_path)
  source = pipeline.make_source(config.data, 'train')
  # The default (one pass, 5 items) rides over the one bad file, epoch after epoch.
  it = iter(pipeline.create_train_dataset(config, source))
  assert sum(int(next(it)['num_skipped']) for _ in range(5)) >= 4  # 20 good: 5 epochs
  config.data.max_consecutive_bad = 1  # any bad file stops the run
  message = _no_valid_data(config, source)
  assert message.startswith(f'no decodable image in 1 examples read from {tmp_path}, in a row ')
  assert 'max_consecutive_bad=1)' in message
  assert f'first reasons: {bad}: not an image in a supported format' in message


def test_two_group_bound_is_the_larger_group(tmp_path):
  _broken_folder(tmp_path / 'trainA', per_class=1)  # 2 broken A images
  _good_folder(tmp_path / 'trainB', per_class=2)  # 4 good B images
  source = groups.folder_domains(str(tmp_path), 'train')
  message = _no_valid_data(_config(tmp_path), source)
  assert message.startswith(
    f'no decodable image in 4 examples read from A {tmp_path / "trainA"} and B '
    f'{tmp_path / "trainB"}, in a row'
  )
  assert 'one pass over its 4 items' in message and str(tmp_path / 'trainA' / 'a') in message


def test_sample_inputs_of_a_broken_test_folder_name_it(tmp_path):
  paths = _broken_folder(tmp_path)
  config = _config(tmp_path)
  source = pipeline.make_source(config.data, 'test')
  with pytest.raises(pipeline.NoValidData) as err:
    samples.sample_inputs(config, source, 4, ('image', 'label'))
  message = str(err.value)
  assert message.startswith(f'no decodable image in 4 examples read from {tmp_path}; ')
  assert message.count(' | ') == 2 and sum(p in message for p in paths) == 3
  # One good file among them is enough: its example alone.
  _write(paths[0], _encode(np.zeros((16, 16, 3), np.uint8), 'PNG'))
  faces = samples.sample_inputs(config, source, 4, ('image', 'label'))
  assert faces['image'].shape == (1, 16, 16, 3) and faces['label'].tolist() == [0]


def test_examples_carry_the_reason(tmp_path):
  good, bad = _good_folder(tmp_path, 1)[0], _broken_folder(tmp_path, 1)[0]
  to_example = pipeline.ToExample(16)
  ok, broken = (to_example.map({'path': p, 'label': 0}) for p in (good, bad))
  assert ok['valid'] and ok['reason'] == ''
  assert not broken['valid'] and broken['reason'].startswith(f'{bad}: not an image')
  pair = to_example.map({'a': {'path': bad, 'label': 0}, 'b': {'path': good, 'label': 1}})
  assert not pair['valid'] and pair['reason'] == broken['reason']
  assert to_example.map({'image': ok['image'], 'label': 1})['reason'] == ''


# ---------------------------------------------------------------- the pixel limit


def test_png_over_the_limit_is_rejected_before_decoding(monkeypatch):
  data = _encode(np.zeros((64, 48, 3), np.uint8), 'PNG')
  assert decoding.decode_image(data, 8, max_pixels=64 * 48).shape == (8, 8, 3)  # at the limit

  def no_decode(self):
    raise AssertionError('decoded')

  monkeypatch.setattr(ImageFile.ImageFile, 'load', no_decode)
  with pytest.raises(decoding.DecodeError) as err:
    decoding.decode_image(data, 8, max_pixels=64 * 48 - 1)
  assert str(err.value) == (
    'image too large: 48x64 = 3072 pixels, over the limit of 3071 pixels '
    '(raise config.data.max_pixels to decode it)'
  )


def test_jpeg_is_decoded_reduced_to_fit_the_limit(tmp_path):
  data = _encode(np.full((256, 256, 3), 90, np.uint8), 'JPEG')  # 1/8 of it: 32x32
  image = decoding.decode_image(data, 16, max_pixels=32 * 32)
  assert np.abs(image.astype(int) - 90).max() <= 2
  with pytest.raises(decoding.DecodeError, match=r'256x256 = 65536 pixels, 32x32 = 1024 decoded '):
    decoding.decode_image(data, 16, max_pixels=32 * 32 - 1)
  path = _write(tmp_path / 'x.jpg', data)
  record = folders.decode_record({'path': path, 'label': 0}, 16, max_pixels=1000)
  assert not record['valid'] and record['reason'].startswith(f'{path}: image too large')


_PEAK_SCRIPT = """
import json, os, sys
import ml_collections
from input_pipeline import folders, pipeline
data = dict(seed=0, image_size=16, random_flip=False, num_workers=0, max_pixels=int(sys.argv[2]))
config = ml_collections.ConfigDict({'batch_size': 4, 'data': data})
it = iter(pipeline.create_train_dataset(config, folders.ImageFolderSource(sys.argv[1])))
skipped = sum(int(next(it)['num_skipped']) for _ in range(2))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent (a big pytest worker).
peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))
print(json.dumps({'peak_kb': peak, 'skipped': skipped}), flush=True)
os._exit(0)  # not waiting for grain's read-ahead threads
"""


def test_a_12000px_png_costs_no_memory(tmp_path, big_png):
  small, big = tmp_path / 'small', tmp_path / 'big'
  _good_folder(small)
  _good_folder(big)
  os.link(big_png, big / 'a' / 'huge.png')
  runs = {  # 2 batches of 4 from 6 or 7 files: every file is read at least once
    'without': (small, decoding.MAX_PIXELS),
    'with': (big, decoding.MAX_PIXELS),
    'limit raised': (big, 2 * BIG * BIG),  # decoded: the measure sees it
  }
  procs = {
    name: subprocess.Popen(
      [sys.executable, '-c', _PEAK_SCRIPT, str(root), str(limit)],
      cwd=ROOT,
      env=conftest.subprocess_env(1),
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for name, (root, limit) in runs.items()
  }
  out = {}
  for name, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    out[name] = json.loads(stdout.strip().splitlines()[-1])
  print({name: o['peak_kb'] // 1024 for name, o in out.items()}, 'MB peak')
  assert out['without']['skipped'] == 0 and out['limit raised']['skipped'] == 0
  assert out['with']['skipped'] >= 1  # the big file was met, and skipped
  assert out['with']['peak_kb'] <= 1.5 * out['without']['peak_kb']
  assert out['limit raised']['peak_kb'] > 1.5 * out['without']['peak_kb']


def test_decodes_at_once_share_the_pixel_limit(monkeypatch):
  data = _encode(np.zeros((100, 100, 3), np.uint8), 'PNG')  # 10000 pixels
  original, lock, state = ImageFile.ImageFile.load, threading.Lock(), {'now': 0, 'most': 0}

  def slow_load(self):
    with lock:
      state['now'] += 1
      state['most'] = max(state['most'], state['now'])
    time.sleep(0.05)
    with lock:
      state['now'] -= 1
    return original(self)

  monkeypatch.setattr(ImageFile.ImageFile, 'load', slow_load)
  most = {}
  for limit in (10_000, 20_000, 10**6):  # room for one image, two, all eight
    state['most'] = 0
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
      calls = [pool.submit(decoding.decode_image, data, 8, max_pixels=limit) for _ in range(8)]
      assert all(c.result().shape == (8, 8, 3) for c in calls)
    most[limit] = state['most']
  assert most[10_000] == 1 and most[20_000] == 2 and most[10**6] > 2, most


# ---------------------------------------------------------------- inspect and prepare


def _no_temporary_files(folder) -> None:
  assert not [n for n in os.listdir(folder) if '.tmp' in n], os.listdir(folder)


def _strict(path: str):
  def reject(constant):
    raise ValueError(f'{path}: not strict JSON ({constant})')

  with open(path) as f:
    return json.load(f, parse_constant=reject)


def test_inspect_lists_bombs_and_bad_files_by_name(tmp_path, big_png):
  data_dir = tmp_path / 'data'
  _good_folder(data_dir, per_class=2)
  huge = str(data_dir / 'a' / 'huge.png')
  os.link(big_png, huge)
  bomb = _write(data_dir / 'b' / 'bomb.png', _flat_png(20000, 20000, idat=False))  # 400 MP
  broken = _write(data_dir / 'b' / 'broken.jpg', b'not a picture')
  out = tmp_path / 'inspect'
  report = inspect_lib.inspect(_config(data_dir), str(out), per_class=2)
  train = report['train']
  reasons = {u['file']: u['reason'] for u in train['unreadable']}
  assert sorted(reasons) == sorted([huge, bomb, broken])
  assert reasons[huge] == (
    f'image too large: {BIG}x{BIG} = {BIG * BIG} pixels, over the limit of '
    f'{decoding.MAX_PIXELS} pixels (raise config.data.max_pixels to decode it)'
  )
  assert reasons[bomb].startswith('image too large: Image size (400000000 pixels) exceeds')
  assert reasons[broken].startswith('not an image in a supported format')
  assert train['sizes'] == {'16x16': 4, f'{BIG}x{BIG}': 1}  # the bomb's header trips Pillow
  assert train['images'] == 7 and train['per_class'] == {'a': 3, 'b': 4}
  assert _strict(str(out / 'report.json')) == report
  sheet = np.asarray(Image.open(out / 'contact_sheet_train.png'))
  assert sheet.shape == (2 * 18 + 2, 2 * 18 + 2, 3)
  _no_temporary_files(out)


def test_prepare_skips_big_images_and_writes_strict_json(tmp_path):
  data_dir = tmp_path / 'data'
  _good_folder(data_dir, per_class=2)
  wide = _write(data_dir / 'a' / 'wide.png', _flat_png(300, 200))  # 60000 pixels
  config = _config(data_dir, max_pixels=50_000)
  out = tmp_path / 'prepared'
  meta = prepare.prepare(config, str(out), splits=('train',), shard_size=3, workers=1)
  assert meta['counts'] == {'train': {'a': 2, 'b': 2}} and meta['skipped'] == {'train': [wide]}
  assert _strict(str(out / 'meta.json'))['skipped'] == {'train': [wide]}
  shards = sorted(n for n in os.listdir(out) if n.endswith('.array_record.json'))
  assert len(shards) == 2
  assert sum(_strict(str(out / n))['items'] for n in shards) == 5
  _no_temporary_files(out)
