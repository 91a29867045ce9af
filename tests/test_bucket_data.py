"""Data sets and run folders on gs:// and s3:// (local test servers: tests/storage_servers.py):
prepare --out a bucket, the ArrayRecord source and image folders read from it, each process its
own share, compare and the sweep's results on a bucket, one-line errors for a missing bucket."""

import json
import os

import numpy as np
from PIL import Image
import pytest

from configs import stargan as stargan_config
from input_pipeline import pipeline
from input_pipeline import prepare
from input_pipeline import records
from jaxpr_gan import compare
from jaxpr_gan import files
from jaxpr_gan import storage
from jaxpr_gan import storage_check
from jaxpr_gan import sweep
from tests import image_fixtures

pytest_plugins = ('tests.storage_servers',)  # the fixtures storage_servers and store

COLOURS = {'angry': (200, 30, 30), 'happy': (30, 200, 30), 'sad': (30, 30, 200)}


def _image_folder(root, per_class=4) -> str:
  """root/<class>/<k>.png: small noisy PNGs of each class's colour, and a file to ignore."""
  for c, (name, colour) in enumerate(sorted(COLOURS.items())):
    for k in range(per_class):
      path = os.path.join(root, name, f'{k}.png')
      os.makedirs(os.path.dirname(path), exist_ok=True)
      rng = np.random.default_rng(10 * c + k)
      pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (10, 12, 3)), 0, 255)
      Image.fromarray(pixels.astype(np.uint8)).save(path)
  files.write_text(os.path.join(root, 'happy', 'notes.txt'), 'not an image\n')
  return str(root)


def _config(**data):
  config = stargan_config.get_config('tiny')
  config.data.update(image_size=8, num_classes=3, num_workers=0, random_flip=False, **data)
  config.batch_size = 4
  return config


def _examples(source) -> list[dict]:
  to_example = pipeline.ToExample(8)
  return [to_example.map(source[i]) for i in range(len(source))]


def _assert_same(a: list[dict], b: list[dict]) -> None:
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x['image'], y['image'])
    assert int(x['label']) == int(y['label']) and bool(x['valid']) == bool(y['valid'])


@pytest.fixture(params=['gs', 's3'])
def bucket(request, storage_servers, tmp_path, monkeypatch) -> str:
  """A fresh folder of the gs:// or s3:// test bucket; s3 data sets are cached under tmp_path."""
  monkeypatch.setenv(records.CACHE_ENV, str(tmp_path / 'cache'))
  return f'{storage_servers[request.param]}/{os.urandom(6).hex()}'


def test_prepare_to_a_bucket_gives_the_local_examples_and_process_shares(bucket, tmp_path):
  config = _config(source='folder', train_dir=_image_folder(tmp_path / 'img'))
  config.data.test_dir = config.data.train_dir
  local = prepare.prepare(config, str(tmp_path / 'local'), shard_size=5, workers=1)
  url = storage.join(bucket, 'prepared')
  meta = prepare.prepare(config, url, shard_size=5, workers=1)
  assert meta['counts'] == local['counts'] and meta['shards'] == {'train': 3, 'test': 3}
  assert 'meta.json' in storage.listdir(url) and not (tmp_path / 'cache').exists()
  on_disk = _config(source='array_record', array_record_dir=str(tmp_path / 'local'))
  in_bucket = _config(source='array_record', array_record_dir=url)
  remote = pipeline.make_source(in_bucket.data, 'train')
  _assert_same(_examples(remote), _examples(pipeline.make_source(on_disk.data, 'train')))
  if url.startswith('s3://'):  # copied once into the cache, read there
    assert os.path.dirname(remote.paths[0]) == records.cache_folder(url)
  else:  # read in place
    assert remote.paths[0].startswith('gs://')
  # Two processes: disjoint reads, whose batches together are the one-process batches.
  whole = iter(pipeline.create_train_dataset(on_disk, pipeline.make_source(on_disk.data, 'train')))
  its = [
    iter(pipeline.create_train_dataset(in_bucket, remote, process_index=p, process_count=2))
    for p in range(2)
  ]
  read = [[], []]
  try:
    for _ in range(3):  # one epoch of the 12 images
      want, parts = next(whole), [next(it) for it in its]
      for k in ('image', 'label', 'index'):
        np.testing.assert_array_equal(np.concatenate([part[k] for part in parts]), want[k])
      for p, part in enumerate(parts):
        read[p] += part['index'].tolist()
  finally:  # grain's read-ahead threads stop while the test server still answers them
    for it in (whole, *its):
      it.close()
  assert not set(read[0]) & set(read[1]) and sorted(read[0] + read[1]) == list(range(12))
  # A rerun skips the shards in the bucket; a lost one is written again.
  storage.remove(storage.join(url, records.shard_name('train', 1, 3)))
  assert prepare.prepare(config, url, shard_size=5, workers=1)['counts'] == meta['counts']
  _assert_same(_examples(records.ArrayRecordSource(url, 'train')), _examples(remote))


def test_fewer_records_than_meta_lists_is_one_line(bucket, tmp_path):
  config = _config(source='folder', train_dir=_image_folder(tmp_path / 'img', per_class=2))
  url = storage.join(bucket, 'prepared')
  meta = prepare.prepare(config, url, splits=('train',), shard_size=10, workers=1)
  meta['counts']['train']['sad'] += 5
  storage.write_text(storage.join(url, 'meta.json'), json.dumps(meta))
  with pytest.raises(records.RecordsUnreadable, match='give 6 records, meta.json lists 11') as e:
    len(records.ArrayRecordSource(url, 'train'))
  assert url in str(e.value) and '\n' not in str(e.value)


def test_image_folders_in_a_bucket_give_the_examples_on_disk(bucket, tmp_path):
  info = image_fixtures.make_mixed_image_folder(tmp_path / 'mixed')
  storage.put_folder(str(tmp_path / 'mixed'), storage.join(bucket, 'mixed'))
  data = {'train_dir': storage.join(bucket, 'mixed'), 'test_dir': str(tmp_path / 'mixed')}
  config = _config(source='folder', **data)
  remote, local = (pipeline.make_source(config.data, split) for split in ('train', 'test'))
  assert remote.class_names == local.class_names == tuple(info['class_names'])
  rel = [remote[i]['path'].removeprefix(data['train_dir']) for i in range(len(remote))]
  assert rel == [local[i]['path'].removeprefix(data['test_dir']) for i in range(len(local))]
  _assert_same(_examples(remote), _examples(local))
  # Two groups with expression subfolders (2CET-GAN's layout).
  for name in ('neutral/0.png', 'emotional/happy/1.png', 'emotional/sad/2.png'):
    with open(info['paths']['rgb_png'], 'rb') as f:
      storage.write_bytes(storage.join(bucket, 'groups', 'train', name), f.read())
  config = _config(source='folder', groups='neutral_emotional', root=storage.join(bucket, 'groups'))
  groups = pipeline.make_source(config.data, 'train')
  assert groups.class_names == ('neutral', 'happy', 'sad')
  assert [int(g[i]['label']) for g in groups.groups for i in range(len(g))] == [0, 1, 2]
  assert all(e['valid'] for e in _examples(groups.groups[1]))


def _fake_run(folder: str, lambda_rec: float, metrics: dict | None) -> str:
  config = stargan_config.get_config('tiny')
  config.loss.lambda_rec = lambda_rec
  storage.makedirs(storage.join(folder, 'eval'))
  storage.write_text(storage.join(folder, 'run.json'), json.dumps({'config': config.to_dict()}))
  if metrics is not None:
    metrics = dict(metrics, config=config.to_dict(), step=4)
    storage.write_text(storage.join(folder, 'eval', 'metrics.json'), json.dumps(metrics))
  return folder


def test_compare_and_sweep_results_on_a_bucket_as_locally(bucket, tmp_path):
  scores = dict(improvement_rate=0.9, psnr=30.4321, ssim=0.94)
  tables = []
  for base in (str(tmp_path / 'runs'), storage.join(bucket, 'runs')):
    runs = [
      _fake_run(storage.join(base, 'a'), 10.0, scores),
      _fake_run(storage.join(base, 'b'), 1.0, dict(scores, psnr=24)),
      _fake_run(storage.join(base, 'c'), 10.0, None),
    ]
    assert compare.expand([storage.join(base, '*')]) == runs
    tables.append(compare.table(compare.load_all(runs)))
  assert tables[0] == tables[1] and tables[0].startswith('| run | loss.lambda_rec |')
  points = [{'name': n} for n in ('a', 'b')]
  values = {n: {s: {'paired_l1': v + s / 100} for s in range(3)} for n, v in (('a', 0.1), ('b', 1))}
  sweep.write_results(str(tmp_path), points, values)
  sweep.write_results(bucket, points, values)
  for name in ('results.md', 'results.json'):
    assert storage.read_text(storage.join(bucket, name)) == (tmp_path / name).read_text()
  plan = {'config': 'c.py', 'points': points}
  sweep.check_plan(bucket, plan)
  sweep.check_plan(bucket, plan)  # the same plan: accepted
  with pytest.raises(sweep.errors.BadInput, match='holds another plan'):
    sweep.check_plan(bucket, dict(plan, config='d.py'))


def test_prepare_to_a_missing_bucket_is_one_line_before_any_work(storage_servers):
  for protocol in ('gs', 's3'):
    url = f'{protocol}://no-such-bucket-here/prepared'
    config = _config(source='folder', train_dir='/nonexistent/images')  # no work would start
    with pytest.raises(storage_check.BucketNotFound, match='bucket no-such-bucket-here') as e:
      prepare.prepare(config, url)
    assert url in str(e.value) and '\n' not in str(e.value)
    config = _config(source='array_record', array_record_dir=url)
    with pytest.raises(storage_check.BucketNotFound):
      pipeline.make_source(config.data, 'train')
