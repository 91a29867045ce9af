"""The grain pipeline: source -> per-process shard -> seeded shuffle -> decode -> augment -> batch.

The iterator's state (`get_state`/`set_state`) is saved with every checkpoint, so a resumed run
reads exactly the batches an uninterrupted run would have read.
"""
from typing import Any

from absl import logging
import grain
import ml_collections
import numpy as np

from input_pipeline import folders
from input_pipeline import synthetic


def make_source(data: ml_collections.ConfigDict, split: str):
  """The random-access source named by `data.source`; it has `class_names`, len and getitem."""
  if data.source == 'synthetic':
    return synthetic.SyntheticFaces(
        split=split, size=data.image_size, num_classes=data.num_classes, style=data.style,
        intensity_range=tuple(data.intensity_range), seed=data.seed)
  if data.source == 'folder':
    root = data.train_dir if split == 'train' else data.test_dir
    if not root:
      raise ValueError(f"config.data.{split}_dir is empty: set it to a folder laid out as "
                       f"{folders.EXPECTED_FOLDER_LAYOUT}")
    source = folders.ImageFolderSource(root)
    if data.num_classes and len(source.class_names) != data.num_classes:
      raise ValueError(
          f'{root} has {len(source.class_names)} class folders {list(source.class_names)} but '
          f'config.data.num_classes is {data.num_classes}: set --config.data.num_classes='
          f'{len(source.class_names)}.')
    return source
  raise ValueError(f"unknown config.data.source {data.source!r}: use 'synthetic' or 'folder'.")


class ToExample(grain.transforms.Map):
  """Any source record -> {'image': uint8 (S, S, 3), 'label': int32, 'valid': bool}."""

  def __init__(self, size: int):
    self._size = size

  def map(self, record: dict[str, Any]) -> dict[str, Any]:
    if 'path' in record:
      record = folders.decode_record(record, self._size)
      return {'image': record['image'], 'label': np.int32(record['label']),
              'valid': np.bool_(record['valid'])}
    return {'image': record['image'], 'label': np.int32(record['label']), 'valid': np.bool_(True)}


class _RandomFlip(grain.transforms.RandomMap):

  def random_map(self, example: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    if rng.random() < 0.5:
      example = dict(example, image=np.ascontiguousarray(example['image'][:, ::-1]))
    return example


class _ValidBatchIterator(grain.DatasetIterator):
  """Stacks `batch_size` valid examples; undecodable ones are dropped and counted per batch."""

  def __init__(self, parent: grain.DatasetIterator, batch_size: int):
    super().__init__(parent)
    self._batch_size = batch_size

  def __next__(self) -> dict[str, np.ndarray]:
    examples, skipped = [], 0
    while len(examples) < self._batch_size:
      example = next(self._parent)
      if example['valid']:
        examples.append(example)
      else:
        skipped += 1
    return {'image': np.stack([e['image'] for e in examples]),
            'label': np.stack([e['label'] for e in examples]),
            'num_skipped': np.int32(skipped)}

  def get_state(self):
    return self._parent.get_state()

  def set_state(self, state):
    self._parent.set_state(state)


class _ValidBatch(grain.IterDataset):

  def __init__(self, parent: grain.IterDataset, batch_size: int):
    super().__init__(parent)
    self._batch_size = batch_size

  def __iter__(self) -> grain.DatasetIterator:
    return _ValidBatchIterator(self._parent.__iter__(), self._batch_size)


def create_train_dataset(config: ml_collections.ConfigDict, source, *, process_index: int = 0,
                         process_count: int = 1) -> grain.IterDataset:
  """Infinite iterator of this process's share of each global batch (`config.batch_size`)."""
  if config.batch_size % process_count:
    raise ValueError(f'batch_size {config.batch_size} is not divisible by the '
                     f'{process_count} processes.')
  data = config.data
  ds = grain.MapDataset.source(source)[process_index::process_count]
  if len(ds) == 0:
    raise ValueError(f'process {process_index} has no training examples: the source holds '
                     f'{len(source)} for {process_count} processes.')
  ds = ds.shuffle(seed=data.seed).repeat(None).map(ToExample(data.image_size))
  if data.random_flip:
    ds = ds.random_map(_RandomFlip(), seed=data.seed + 1)
  ds = ds.to_iter_dataset()
  if data.num_workers > 0:
    # Workers take strided slices and are read round-robin, so examples arrive in the same
    # order for any number of workers; batching (and dropping bad files) stays here.
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=data.num_workers,
                                                     per_worker_buffer_size=64))
  ds = _ValidBatch(ds, config.batch_size // process_count)
  logging.info('Training data: %d examples for this process (%d of %d processes), classes %s.',
               len(source) // process_count, process_index, process_count,
               list(source.class_names))
  return ds
