"""The grain pipeline: robust decoding end to end, per-process shards, resumable order."""

import grain
import numpy as np
import pytest

from configs import stargan as stargan_config
from input_pipeline import decoding
from input_pipeline import folders
from input_pipeline import pipeline
from tests import image_fixtures


def _folder_config(root, batch_size, num_workers=0):
  config = stargan_config.get_config('tiny')
  config.batch_size = batch_size
  config.data.update(
    source='folder',
    train_dir=str(root),
    test_dir=str(root),
    num_classes=3,
    image_size=24,
    random_flip=False,
    num_workers=num_workers,
  )
  return config


def _expected_skips(source, seed, batch_size, num_batches, bad_paths):
  """Per batch, the bad files met before its last good one, in the pipeline's shuffled order."""
  order = grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
  counts, index = [], 0
  for _ in range(num_batches):
    good = skipped = 0
    while good < batch_size:
      if order[index]['path'] in bad_paths:
        skipped += 1
      else:
        good += 1
      index += 1
    counts.append(skipped)
  return counts


def bad_paths_of(source):
  return {
    source[i]['path']
    for i in range(len(source))
    if not folders.decode_record(source[i], 8)['valid']
  }


def test_mixed_folder_batches_good_images_and_counts_bad(tmp_path):
  info = image_fixtures.make_mixed_image_folder(tmp_path)
  assert info['num_good'] == 11 and info['num_bad'] == 3
  config = _folder_config(tmp_path, batch_size=info['num_good'])
  source = pipeline.make_source(config.data, 'train')
  assert list(source.class_names) == info['class_names']
  assert bad_paths_of(source) == set(info['bad_paths'])
  it = iter(pipeline.create_train_dataset(config, source))
  batch = next(it)
  assert batch['image'].dtype == np.uint8 and batch['image'].shape == (11, 24, 24, 3)
  assert batch['label'].dtype == np.int32 and set(batch['label']) <= {0, 1, 2}
  # One batch of 11 good images from 11 good files: each good file exactly once.
  bad = set(info['bad_paths'])
  good = sorted(source[i]['label'] for i in range(len(source)) if source[i]['path'] not in bad)
  assert sorted(batch['label'].tolist()) == good
  want = sorted(
    decoding.load_image(source[i]['path'], 24).tobytes()
    for i in range(len(source))
    if source[i]['path'] not in bad
  )
  assert sorted(im.tobytes() for im in batch['image']) == want
  # Bad files are dropped and counted in the batch that met them, epoch after epoch.
  counts = [int(batch['num_skipped'])] + [int(next(it)['num_skipped']) for _ in range(3)]
  assert counts == _expected_skips(source, config.data.seed, 11, 4, bad)
  assert sum(counts) >= 3 * info['num_bad']  # 4 batches of 11 = 4 epochs of good files


def test_iterator_state_restores_exact_batches(tmp_path):
  config = stargan_config.get_config('tiny')
  source = pipeline.make_source(config.data, 'train')
  it = iter(pipeline.create_train_dataset(config, source))
  for _ in range(3):
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(2)]
  it2 = iter(pipeline.create_train_dataset(config, source))
  it2.set_state(state)
  for want in expected:
    got = next(it2)
    np.testing.assert_array_equal(got['image'], want['image'])
    np.testing.assert_array_equal(got['label'], want['label'])


def test_worker_processes_give_the_same_batches_as_in_process():
  config = stargan_config.get_config('tiny')
  source = pipeline.make_source(config.data, 'train')
  in_process = iter(pipeline.create_train_dataset(config, source))
  config.data.num_workers = 2
  workers = iter(pipeline.create_train_dataset(config, source))
  for _ in range(3):
    a, b = next(in_process), next(workers)
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])


def test_process_shards_are_disjoint_and_cover_the_data():
  config = stargan_config.get_config('tiny')
  config.batch_size = 10
  config.data.random_flip = False
  source = pipeline.make_source(config.data, 'train')
  seen = []
  for p in range(2):
    it = iter(pipeline.create_train_dataset(config, source, process_index=p, process_count=2))
    # 5 per process and batch: 100 batches are one epoch of the 500-example shard.
    images = np.concatenate([next(it)['image'] for _ in range(100)])
    seen.append({im.tobytes() for im in images})
  assert len(seen[0]) == len(seen[1]) == 500
  assert not seen[0] & seen[1]


@pytest.mark.parametrize('process_count', [2, 4])
def test_global_batches_do_not_depend_on_the_process_count(process_count):
  """Process p reads block p of every global batch: together, the batches of one process."""
  config = stargan_config.get_config('tiny')  # batch 8, random flips on
  source = pipeline.make_source(config.data, 'train')
  one = iter(pipeline.create_train_dataset(config, source))
  shares = [
    iter(
      pipeline.create_train_dataset(config, source, process_index=p, process_count=process_count)
    )
    for p in range(process_count)
  ]
  for _ in range(3):
    want, parts = next(one), [next(it) for it in shares]
    assert all(len(part['label']) == 8 // process_count for part in parts)
    for k in ('image', 'label', 'index'):
      np.testing.assert_array_equal(np.concatenate([part[k] for part in parts]), want[k])


@pytest.mark.parametrize(
  'make,match',
  [
    (lambda root: None, 'does not exist'),
    (lambda root: root.mkdir(), 'no class subfolders'),
    (lambda root: (root.mkdir(), (root / 'happy').mkdir()), 'no image files'),
  ],
)
def test_bad_layouts_stop_before_training(tmp_path, make, match):
  root = tmp_path / 'data'
  make(root)
  config = _folder_config(root, batch_size=2)
  with pytest.raises(folders.DatasetLayoutError, match=match) as e:
    pipeline.make_source(config.data, 'train')
  assert str(root) in str(e.value) and 'root/<class_name>' in str(e.value)
