"""Pre-decoded record sources: ArrayRecord shards (from `input_pipeline.prepare`) and TFDS.

ArrayRecord layout of a prepared directory:
  meta.json                                   class names, image size, counts, groups, source
  <split>[-<group>]-SSSSS-of-NNNNN.array_record   shards; each record one example
A record is a JSON header line ({"label", "shape", "identity"}) then the raw uint8 pixels, so a
record is read without decoding any image format. Items come back as {'image', 'label'}, which
the pipeline uses as they are: the images were cropped and resized once, at preparation.

A prepared directory may be a gs:// or s3:// URL. gs:// shards are read in place by
array_record's own GCS reader (each process reads only the records of its share); s3://, which
array_record cannot read, is copied once per machine into a local cache (`cache_folder`) and read
there. meta.json is read through `jaxpr_gan.storage` on any store.

TFDS: `tfds.data_source(name, split, data_dir)` of a prepared data set, read without
TensorFlow; the image and label features are named in the config; images are centre-cropped
and resized to data.image_size as the file decoder does.
"""

import fnmatch
import hashlib
import json
import os

import numpy as np
from PIL import Image

from jaxpr_gan import errors
from jaxpr_gan import storage
from jaxpr_gan import storage_check

META_FILE = 'meta.json'
CACHE_ENV = 'JAXPR_GAN_DATA_CACHE'  # where s3:// data sets are copied (default ~/.cache/...)


class RecordsUnreadable(errors.UserError):
  """ArrayRecord shards that give fewer records than meta.json lists (array_record reads an
  unreadable or missing file as empty, without an error)."""


def encode(image: np.ndarray, label: int, identity: str = '') -> bytes:
  header = json.dumps(
    {'label': int(label), 'shape': list(image.shape), 'identity': identity}
  ).encode()
  return header + b'\n' + np.ascontiguousarray(image, np.uint8).tobytes()


def decode(record: bytes) -> dict:
  newline = record.index(b'\n')
  header = json.loads(record[:newline])
  image = np.frombuffer(record[newline + 1 :], np.uint8).reshape(header['shape'])
  return {
    'image': image.copy(),
    'label': np.int32(header['label']),
    'identity': header.get('identity', ''),
  }


def shard_name(prefix: str, index: int, count: int) -> str:
  """prefix: the split, or split-group."""
  return f'{prefix}-{index:05d}-of-{count:05d}.array_record'


def read_meta(directory: str) -> dict:
  """meta.json of a prepared directory (local, gs:// or s3://; a bucket is checked first, so an
  unreachable store is a one-line error)."""
  storage_check.check_reachable(directory)
  path = storage.join(directory, META_FILE)
  if not storage.exists(path):
    raise FileNotFoundError(
      f'{directory!r} holds no {META_FILE}: is it the output of python -m '
      'input_pipeline.prepare? (config.data.array_record_dir)'
    )
  return json.loads(storage.read_text(path))


def cache_folder(url: str) -> str:
  """The local copy of the prepared set at `url`: $JAXPR_GAN_DATA_CACHE (default
  ~/.cache/jaxpr_gan/data)/<hash of the URL>."""
  home = os.path.join(os.path.expanduser('~'), '.cache', 'jaxpr_gan', 'data')
  root = os.environ.get(CACHE_ENV) or home
  return os.path.join(root, hashlib.sha256(url.rstrip('/').encode()).hexdigest()[:16])


def _shards(directory: str, prefix: str) -> list[str]:
  """The shard files of `prefix` in `directory`, sorted (URLs for a bucket)."""
  pattern = f'{prefix}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9]*.array_record'
  names = storage.listdir(directory) if storage.isdir(directory) else []
  return [storage.join(directory, n) for n in sorted(fnmatch.filter(names, pattern))]


def _readable(directory: str, prefix: str, paths: list[str]) -> list[str]:
  """Paths array_record can open: for s3:// the whole prepared set is copied into the local
  cache first (files of equal size already there are kept; a listing decides), gs:// and local
  shards are used as they are."""
  if directory.startswith('gs://') and storage.gcs_emulator():
    # A GCS test server: array_record's reader (google-cloud-cpp) reads another variable.
    os.environ.setdefault('CLOUD_STORAGE_EMULATOR_ENDPOINT', storage.gcs_emulator())
  if not directory.startswith('s3://'):
    return paths
  cache = cache_folder(directory)
  storage.get_folder(directory, cache)
  return [os.path.join(cache, p.rsplit('/', 1)[-1]) for p in paths]


class ArrayRecordSource:
  """Random access to the examples of one split (and group) of a prepared directory."""

  def __init__(self, directory: str, split: str, group: str | None = None):
    meta = read_meta(directory)
    prefix = f'{split}-{group}' if group else split
    self.paths = _shards(directory, prefix)
    expected = meta['shards'].get(prefix)
    if not self.paths or len(self.paths) != expected:
      raise FileNotFoundError(
        f'{directory}: {len(self.paths)} shards of {prefix!r}, meta.json '
        f'lists {expected}; rerun python -m input_pipeline.prepare to '
        'finish it'
      )
    self.paths = _readable(directory, prefix, self.paths)
    self.class_names = tuple(meta['class_names'])
    self.image_size = meta['image_size']
    counts = meta.get('counts', {}).get(prefix)
    self._expected = None if counts is None else sum(counts.values())
    self._directory, self._prefix = directory, prefix
    self._source = None

  def _open(self):
    if self._source is None:  # opened lazily, so the source pickles into grain workers
      from array_record.python import array_record_data_source  # pylint: disable=g-import-not-at-top

      source = array_record_data_source.ArrayRecordDataSource(self.paths)
      if self._expected is not None and len(source) != self._expected:
        raise self._unreadable(len(source))
      self._source = source
    return self._source

  def _unreadable(self, found: int) -> RecordsUnreadable:
    fix = 'rerun python -m input_pipeline.prepare'
    if self._directory.startswith('gs://'):
      fix = (
        'check that the shards are there and GOOGLE_APPLICATION_CREDENTIALS may read them '
        '(CLOUD_STORAGE_EMULATOR_ENDPOINT for a test server)'
      )
    return RecordsUnreadable(
      f'{self._directory}: the {self._prefix!r} shards give {found} records, meta.json lists '
      f'{self._expected}; {fix}'
    )

  def __len__(self) -> int:
    return len(self._open())

  def __getitem__(self, index) -> dict:
    example = decode(self._open()[int(index)])
    return {'image': example['image'], 'label': example['label']}

  def labels(self) -> np.ndarray:
    return np.array([decode(self._open()[i])['label'] for i in range(len(self))], np.int32)

  def __getstate__(self):
    return dict(self.__dict__, _source=None)

  def __repr__(self) -> str:
    return f'ArrayRecordSource({self._directory}, {self._prefix})'


def fit(image: np.ndarray, size: int) -> np.ndarray:
  """An array image (H, W[, C]) -> uint8 (size, size, 3): centre square, Lanczos, as files."""
  image = np.asarray(image)
  if image.ndim == 2 or image.shape[-1] == 1:
    image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=-1)
  img = Image.fromarray(image[..., :3].astype(np.uint8))
  w, h = img.size
  side = min(w, h)
  left, top = (w - side) // 2, (h - side) // 2
  img = img.resize(
    (size, size),
    Image.Resampling.LANCZOS,
    box=(left, top, left + side, top + side),
    reducing_gap=3.0,
  )
  return np.asarray(img, np.uint8).reshape(size, size, 3)


class TFDSSource:
  """A prepared TFDS data set's split through `tfds.data_source`, items {'image', 'label'}."""

  def __init__(
    self, name: str, split: str, data_dir: str, image_key: str, label_key: str, size: int
  ):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    try:
      self._source = tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
    except Exception as e:  # tfds raises several kinds for a missing or unprepared set
      raise FileNotFoundError(
        f'TFDS data set {name!r} split {split!r} is not prepared in '
        f'{data_dir or "the default data_dir"} ({type(e).__name__}: {e}); prepare it with '
        'tfds build (file_format=array_record) or set config.data.tfds_data_dir'
      ) from e
    features = self._source.dataset_info.features
    for key in (image_key, label_key):
      if key not in features:
        raise KeyError(
          f'TFDS data set {name!r} has no feature {key!r} (has '
          f'{list(features.keys())}); set config.data.tfds_image_key / '
          'tfds_label_key'
        )
    label = features[label_key]
    self.class_names = tuple(
      getattr(label, 'names', None) or [str(i) for i in range(label.num_classes)]
    )
    self._image_key, self._label_key, self._size = image_key, label_key, size

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index) -> dict:
    example = self._source[int(index)]
    return {
      'image': fit(example[self._image_key], self._size),
      'label': np.int32(example[self._label_key]),
    }
