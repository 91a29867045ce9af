"""The grain pipeline: seeded shuffle -> decode -> augment -> this process's share -> batch.

The global stream of examples (shuffle, decode, flip) depends on the seed alone; process `p` of
`P` reads, of every global batch of `B` examples, the block `[p * B/P, (p + 1) * B/P)` and only
those: the processes read disjoint examples, an epoch of them together covers the data, and the
global batch that `jax.make_array_from_process_local_data` assembles is the same for any number
of processes (the batches of 1 process of 8 devices and of 2 processes of 4 devices are equal).
An undecodable file is replaced by the next example of the same process's share (its block of a
later batch), so with bad files the batches are the same per process count only. The wait for
good examples is bounded: `data.max_consecutive_bad` bad examples in a row (0: as many as the
source holds, one pass) end the stream with `NoValidData`, naming the source and the first
reasons, instead of looping (and logging) forever over a folder of broken files.

The iterator's state (`get_state`/`set_state`) is saved with every checkpoint, so a resumed run
reads exactly the batches an uninterrupted run would have read.
"""

from collections.abc import Iterable
from typing import Any

from absl import logging
import grain
import ml_collections
import numpy as np

from input_pipeline import decoding
from input_pipeline import folders
from input_pipeline import groups
from input_pipeline import records
from input_pipeline import sources
from input_pipeline import splits
from input_pipeline import synthetic
from input_pipeline import workers
from jaxpr_gan import errors

# data.groups: how a model reads its data. 'classes': labelled faces (the conditional family);
# 'domains': two unpaired domains (CycleGAN); 'neutral_emotional': the groups of 2CET-GAN.
GROUPINGS = ('classes', 'domains', 'neutral_emotional')
SOURCES = ('synthetic', 'folder') + sources.LABELLED_SOURCES + ('tfds', 'array_record')
_UNSTACKED = ('valid', 'reason')  # per-example bookkeeping, not batch fields


class NoValidData(errors.UserError):
  """No decodable example where some were needed; the message names the source and why."""


def source_name(source) -> str:
  """Where a source's examples come from, for messages: its name and folder, else its type."""
  if isinstance(source, groups.TwoGroupSource):
    return ' and '.join(f'{n} {source_name(g)}' for n, g in zip(source.group_names, source.groups))
  name, root = getattr(source, 'name', ''), getattr(source, 'root', '')
  if name and root:
    return f'{name} ({root})'
  return str(name or root) or type(source).__name__


def no_valid_data(where: str, count: int, reasons: Iterable[str], note: str = '') -> NoValidData:
  """The one-line error for `count` examples read from `where` that all failed."""
  shown = ' | '.join(' '.join(str(r).split()) for r in list(reasons)[:3]) or 'none recorded'
  return NoValidData(
    f'no decodable image in {count} examples read from {where}{note}; first reasons: {shown}'
  )


def max_pixels(data: ml_collections.ConfigDict) -> int:
  """data.max_pixels, or the default of configs saved before the key existed."""
  return int(data.get('max_pixels', decoding.MAX_PIXELS))


def _make_group_source(data: ml_collections.ConfigDict, split: str) -> groups.TwoGroupSource:
  if data.source == 'synthetic':
    if data.groups == 'domains':
      return groups.synthetic_domains(
        split, data.image_size, data.num_classes, data.styles, data.seed
      )
    return groups.synthetic_groups(
      split, data.image_size, data.num_classes, data.style, tuple(data.intensity_range), data.seed
    )
  if data.source == 'folder':
    if not data.root:
      layout = (
        groups.EXPECTED_DOMAIN_LAYOUT if data.groups == 'domains' else groups.EXPECTED_GROUP_LAYOUT
      )
      raise ValueError(f'config.data.root is empty: set it to a folder laid out as {layout}')
    if data.groups == 'domains':
      return groups.folder_domains(data.root, split)
    return groups.folder_groups(data.root, split)
  if data.source == 'array_record':  # prepared from a two-group source: one group per file set
    meta = records.read_meta(data.array_record_dir)
    names = meta.get('groups')
    if not names:
      raise ValueError(
        f'{data.array_record_dir} holds labelled classes, not two groups; prepare '
        f'it from a {data.groups!r} config'
      )
    a, b = (records.ArrayRecordSource(data.array_record_dir, split, g) for g in names)
    return groups.TwoGroupSource(a, b, tuple(names), tuple(meta['class_names']))
  raise ValueError(
    f'config.data.source {data.source!r} cannot give two groups: use '
    "'synthetic', 'folder' or 'array_record'."
  )


def make_source(data: ml_collections.ConfigDict, split: str):
  """The random-access source named by `data.source`; it has `class_names`, len and getitem.

  With `data.groups` 'domains' or 'neutral_emotional' it is a `groups.TwoGroupSource`.
  """
  grouping = data.get('groups', 'classes')
  if grouping not in GROUPINGS:
    raise ValueError(f'unknown config.data.groups {grouping!r}; use one of {GROUPINGS}.')
  if grouping != 'classes':
    return _make_group_source(data, split)
  if data.source == 'synthetic':
    return synthetic.SyntheticFaces(
      split=split,
      size=data.image_size,
      num_classes=data.num_classes,
      style=data.style,
      intensity_range=tuple(data.intensity_range),
      seed=data.seed,
    )
  if data.source == 'folder':
    root = data.train_dir if split == 'train' else data.test_dir
    if not root:
      raise ValueError(
        f'config.data.{split}_dir is empty: set it to a folder laid out as '
        f'{folders.EXPECTED_FOLDER_LAYOUT}'
      )
    source = folders.ImageFolderSource(root)
  elif data.source in sources.LABELLED_SOURCES:
    source = splits.make_labelled_source(data, split)
  elif data.source == 'tfds':
    source = records.TFDSSource(
      data.tfds_name,
      data.tfds_train_split if split == 'train' else data.tfds_test_split,
      data.tfds_data_dir,
      data.tfds_image_key,
      data.tfds_label_key,
      data.image_size,
    )
  elif data.source == 'array_record':
    source = records.ArrayRecordSource(data.array_record_dir, split)
    if source.image_size != data.image_size:
      raise ValueError(
        f'{data.array_record_dir} was prepared at {source.image_size} px but '
        f'config.data.image_size is {data.image_size}; prepare it again or set '
        f'--config.data.image_size={source.image_size}'
      )
  else:
    raise ValueError(f'unknown config.data.source {data.source!r}: use one of {SOURCES}.')
  if data.num_classes and len(source.class_names) != data.num_classes:
    raise ValueError(
      f'the {data.source} data has {len(source.class_names)} classes '
      f'{list(source.class_names)} but config.data.num_classes is {data.num_classes}: set '
      f'--config.data.num_classes={len(source.class_names)}.'
    )
  return source


class ToExample(grain.transforms.Map):
  """Any source record -> {'image': uint8 (S, S, 3), 'label': int32, 'valid': bool, 'reason'}.

  A two-group record {'a': ..., 'b': ...} gives image_a, label_a, image_b, label_b, valid and
  reason. `reason` (a str scalar, '' when valid) says why an example is invalid; it travels in
  the example because grain may decode in worker processes. Files over `max_pixels` pixels are
  invalid (decoding.py).
  """

  def __init__(self, size: int, max_pixels: int = decoding.MAX_PIXELS):
    self._size, self._max_pixels = size, max_pixels

  def map(self, record: dict[str, Any]) -> dict[str, Any]:
    if 'a' in record and 'b' in record:
      a, b = self.map(record['a']), self.map(record['b'])
      return {
        'image_a': a['image'],
        'label_a': a['label'],
        'image_b': b['image'],
        'label_b': b['label'],
        'valid': np.bool_(a['valid'] and b['valid']),
        'reason': np.str_('; '.join(str(r) for r in (a['reason'], b['reason']) if r)),
      }
    if 'path' in record:
      record = folders.decode_record(record, self._size, self._max_pixels)
      return {
        'image': record['image'],
        'label': np.int32(record['label']),
        'valid': np.bool_(record['valid']),
        'reason': np.str_(record['reason']),
      }
    image, label = record['image'], np.int32(record['label'])
    return {'image': image, 'label': label, 'valid': np.bool_(True), 'reason': np.str_('')}


class _Read(grain.transforms.Map):
  """Source index -> the example `ToExample` makes of it, with its `index` in the source."""

  def __init__(self, source, size: int, max_pixels: int):
    self._source = source
    self._to_example = ToExample(size, max_pixels)

  def map(self, index: int) -> dict[str, Any]:
    return dict(self._to_example.map(self._source[int(index)]), index=np.int64(index))


class _ReadPair(grain.transforms.Map):
  """(index in group a, index in group b) -> the pair's example with index_a and index_b."""

  def __init__(self, source: groups.TwoGroupSource, size: int, max_pixels: int):
    self._groups = source.groups
    self._to_example = ToExample(size, max_pixels)

  def map(self, indices) -> dict[str, Any]:
    ia, ib = (int(i) for i in indices)
    a, b = self._groups
    return dict(
      self._to_example.map({'a': a[ia], 'b': b[ib]}), index_a=np.int64(ia), index_b=np.int64(ib)
    )


class _Zip(grain.MapDataset):
  """Element i is (a[i], b[i]): two index streams read side by side."""

  def __init__(self, a: grain.MapDataset, b: grain.MapDataset):
    super().__init__([a, b])
    self._a, self._b = a, b

  def __len__(self) -> int:
    return min(len(self._a), len(self._b))

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return (self._a[index], self._b[index])

  def __str__(self) -> str:
    return '_Zip'


class _ProcessBlocks(grain.MapDataset):
  """Of every `block * count` consecutive elements of the parent, block number `index`."""

  def __init__(self, parent: grain.MapDataset, block: int, index: int, count: int):
    super().__init__(parent)
    self._block, self._index, self._count = block, index, count

  def __len__(self) -> int:
    return len(self._parent) // self._count

  def _parent_index(self, i: int) -> int:
    batch, offset = divmod(i, self._block)
    return (batch * self._count + self._index) * self._block + offset

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return self._parent[self._parent_index(index)]

  def _getitems(self, indices):
    indices = [self._parent_index(i) for i in indices]
    return self._parent._getitems(indices)  # pylint: disable=protected-access

  def __str__(self) -> str:
    return f'_ProcessBlocks(block={self._block}, index={self._index}, count={self._count})'


class _RandomFlip(grain.transforms.RandomMap):
  def random_map(self, example: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    flipped = {}
    for key in sorted(k for k in example if k.startswith('image')):  # each image on its own
      if rng.random() < 0.5:
        flipped[key] = np.ascontiguousarray(example[key][:, ::-1])
    return dict(example, **flipped)


class _ValidBatchIterator(grain.DatasetIterator):
  """Stacks `batch_size` valid examples; undecodable ones are dropped and counted per batch.

  `max_bad` invalid examples in a row raise NoValidData naming `where` and the first reasons:
  a source with nothing decodable would otherwise be read forever.
  """

  def __init__(
    self, parent: grain.DatasetIterator, batch_size: int, max_bad: int, where: str, note: str
  ):
    super().__init__(parent)
    self._batch_size, self._max_bad = batch_size, max_bad
    self._where, self._note = where, note

  def __next__(self) -> dict[str, np.ndarray]:
    """-> the examples' fields stacked ('image', 'label', 'index' in the source, or their _a and
    _b forms for two groups) and 'num_skipped'; the loop uses the objective's batch keys."""
    examples, skipped, bad_run, reasons = [], 0, 0, []
    while len(examples) < self._batch_size:
      example = next(self._parent)
      if example['valid']:
        examples.append(example)
        bad_run, reasons = 0, []
        continue
      skipped += 1
      bad_run += 1
      reason = str(example.get('reason', ''))
      if reason and reason not in reasons and len(reasons) < 3:
        reasons.append(reason)
      if bad_run >= self._max_bad:
        raise no_valid_data(self._where, bad_run, reasons, self._note)
    batch = {k: np.stack([e[k] for e in examples]) for k in examples[0] if k not in _UNSTACKED}
    return dict(batch, num_skipped=np.int32(skipped))

  def get_state(self):
    return self._parent.get_state()

  def set_state(self, state):
    self._parent.set_state(state)


class _ValidBatch(grain.IterDataset):
  """Batches of valid examples, at most `max_consecutive_bad` invalid ones in a row (see above)."""

  def __init__(self, parent: grain.IterDataset, batch_size: int, data, source):
    super().__init__(parent)
    self._batch_size = batch_size
    setting = int(data.get('max_consecutive_bad', 0))
    self._max_bad = setting or len(source)  # TwoGroupSource: its larger group's length
    self._where = source_name(source)
    self._note = f', in a row (config.data.max_consecutive_bad={setting}' + (
      f': one pass over its {len(source)} items)' if not setting else ')'
    )

  def __iter__(self) -> grain.DatasetIterator:
    return _ValidBatchIterator(
      self._parent.__iter__(), self._batch_size, self._max_bad, self._where, self._note
    )


def create_train_dataset(
  config: ml_collections.ConfigDict, source, *, process_index: int = 0, process_count: int = 1
) -> grain.IterDataset:
  """Infinite iterator of this process's block of each global batch (`config.batch_size`).

  Every process builds the same global stream and reads only its own block of each batch (a
  lazy view: the other processes' examples are never decoded).
  """
  if config.batch_size % process_count:
    raise ValueError(
      f'batch_size {config.batch_size} is not divisible by the {process_count} processes.'
    )
  data = config.data
  per_process = config.batch_size // process_count
  if len(source) == 0:
    raise ValueError('the training source holds no examples.')
  if isinstance(source, groups.TwoGroupSource):  # two streams, each shuffled on its own
    a, b = (
      grain.MapDataset.range(len(g)).shuffle(seed=data.seed + 17 * k).repeat(None)
      for k, g in enumerate(source.groups)
    )
    ds = _Zip(a, b).map(_ReadPair(source, data.image_size, max_pixels(data)))
  else:
    ds = grain.MapDataset.range(len(source)).shuffle(seed=data.seed).repeat(None)
    ds = ds.map(_Read(source, data.image_size, max_pixels(data)))
  if data.random_flip:  # seeded by the position in the global stream
    ds = ds.random_map(_RandomFlip(), seed=data.seed + 1)
  if process_count > 1:
    ds = _ProcessBlocks(ds, per_process, process_index, process_count)
  ds = ds.to_iter_dataset()
  if data.num_workers > 0:
    # Workers take strided slices and are read round-robin, so examples arrive in the same
    # order for any number of workers; batching (and dropping bad files) stays here.
    ds = ds.mp_prefetch(
      grain.MultiprocessingOptions(num_workers=data.num_workers, per_worker_buffer_size=64),
      worker_init_fn=workers.exit_with_parent,
    )
  ds = _ValidBatch(ds, per_process, data, source)
  logging.info(
    'Training data: %d examples, classes %s; process %d of %d reads %d of every '
    'global batch of %d.',
    len(source),
    list(source.class_names),
    process_index,
    process_count,
    per_process,
    config.batch_size,
  )
  return ds
