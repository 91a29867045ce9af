"""Class-per-subfolder image data sets (StarGAN's RaFD layout) as a grain random-access source.

Scanning checks the layout up front, so an empty or mis-arranged data set stops the run before
training with an error naming the path and the layout expected. Items are cheap records (path,
label); decoding happens later in a grain map (`decode_record`), where one unreadable file is
logged and marked invalid instead of killing the run.

A root may be a gs:// or s3:// URL (jaxpr_gan.storage): the folders are listed once, up front
(one request per folder), and each file is read only when the pipeline decodes it, so every
process of a multi-host run reads the files of its own share and no others.
"""

from __future__ import annotations

import os

from absl import logging
import numpy as np

from input_pipeline import decoding
from jaxpr_gan import storage
from jaxpr_gan import storage_check

EXPECTED_FOLDER_LAYOUT = (
  "root/<class_name>/*.{jpg,jpeg,png,bmp,webp} (one subfolder per class, as StarGAN's RaFD layout)"
)


class DatasetLayoutError(ValueError):
  """The data set folder is missing, empty or not laid out as EXPECTED_FOLDER_LAYOUT."""


def _layout_error(problem: str) -> DatasetLayoutError:
  return DatasetLayoutError(f'{problem}. Expected layout: {EXPECTED_FOLDER_LAYOUT}')


def _is_image_name(name: str) -> bool:
  return not name.startswith('.') and name.lower().endswith(decoding.IMAGE_EXTENSIONS)


def list_folder(folder: str) -> tuple[list[str], list[str]]:
  """(subfolder names, file names) directly in `folder`, each sorted, hidden ones included; a
  bucket's folder in one listing."""
  if not storage.is_remote(folder):
    names = sorted(os.listdir(folder))
    dirs = [n for n in names if os.path.isdir(os.path.join(folder, n))]
    return dirs, [n for n in names if os.path.isfile(os.path.join(folder, n))]
  fs, path = storage.filesystem(folder)
  dirs, names = set(), set()
  for entry in fs.ls(path, detail=True):
    name = entry['name'].rstrip('/').rsplit('/', 1)[-1]
    if name and entry['name'].rstrip('/') != path.rstrip('/'):
      (dirs if entry['type'] == 'directory' else names).add(name)
  return sorted(dirs), sorted(names - dirs)


def walk(folder: str):
  """os.walk (top down; the caller may prune `dirs` in place) for a folder or a bucket URL."""
  if not storage.is_remote(folder):
    yield from os.walk(folder)
    return
  dirs, names = list_folder(folder)
  yield folder, dirs, names
  for name in dirs:
    yield from walk(storage.join(folder, name))


def scan_image_folder(root: str) -> tuple[list[str], list[tuple[str, int]]]:
  """Lists root/<class>/<image> files.

  Returns (class names sorted, [(file path, class index)] sorted by class then file name).
  Hidden entries (names starting with '.') and files without an image extension (matched
  case-insensitively) are ignored; class folders are not searched recursively. Raises
  DatasetLayoutError, naming the offending path(s), when root is missing or not a directory,
  has no class subfolders, or has class folders without image files.
  """
  root = os.fspath(root)
  storage_check.check_reachable(root)
  if not storage.isdir(root):
    if storage.exists(root):
      raise _layout_error(f'data set root {root!r} is not a directory')
    raise _layout_error(f'data set root {root!r} does not exist')

  dirs, names = list_folder(root)
  class_names = [n for n in dirs if not n.startswith('.')]
  loose_images = [n for n in names if _is_image_name(n)]
  if not class_names:
    if loose_images:
      raise _layout_error(
        f'data set root {root!r} has {len(loose_images)} image files directly in it (e.g. '
        f'{loose_images[0]!r}) but no class subfolders; move them into root/<class_name>/'
      )
    raise _layout_error(f'data set root {root!r} has no class subfolders')
  if loose_images:
    logging.warning(
      'Ignoring %d image files directly in data set root %s (e.g. %s); only '
      'images inside class subfolders are used.',
      len(loose_images),
      root,
      loose_images[0],
    )

  files, empty = [], []
  for label, name in enumerate(class_names):
    folder = storage.join(root, name)
    images = [storage.join(folder, f) for f in list_folder(folder)[1] if _is_image_name(f)]
    if not images:
      empty.append(folder)
    files.extend((path, label) for path in images)
  if empty:
    raise _layout_error(
      'class folder(s) with no image files ('
      f'{"/".join(decoding.IMAGE_EXTENSIONS)}): {", ".join(empty)}'
    )
  return class_names, files


class FileListSource:
  """grain-compatible random-access source of image files; items are cheap records
  {'path', 'label'}, decoded later in a map (`decode_record`).

  Holds only the file list (strings and an int32 array), so it pickles cheaply into grain
  worker processes. `root` (the folder given, else the files' common folder) names the source
  in error messages.
  """

  def __init__(self, paths, labels, class_names, root: str = ''):
    self._paths = list(paths)
    self._labels = np.asarray(labels, dtype=np.int32)
    self.class_names = tuple(class_names)
    self._root = os.fspath(root)

  @property
  def root(self) -> str:
    if not self._root and self._paths:
      try:
        self._root = os.path.commonpath([os.path.dirname(p) for p in self._paths])
      except ValueError:  # absolute and relative paths mixed
        pass
    return self._root

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index) -> dict:
    index = int(index)
    return {'path': self._paths[index], 'label': self._labels[index]}

  def labels(self) -> np.ndarray:
    """Every item's label, without reading any image."""
    return self._labels.copy()

  def __repr__(self) -> str:
    return f'{type(self).__name__}({len(self)} images, classes {list(self.class_names)})'


class ImageFolderSource(FileListSource):
  """The files of root/<class>/* (`scan_image_folder`), labelled by their class folder."""

  def __init__(self, root: str):
    root = os.fspath(root)
    class_names, files = scan_image_folder(root)
    paths, labels = [path for path, _ in files], [label for _, label in files]
    super().__init__(paths, labels, class_names, root=root)


def decode_record(record: dict, size: int, max_pixels: int = decoding.MAX_PIXELS) -> dict:
  """{'path', 'label'} -> {'image': uint8 (size, size, 3), 'label': int32, 'valid': bool,
  'reason': str}.

  An unreadable file (or one over `max_pixels`, see decoding.py) is logged with its path and the
  reason and comes back as a zero image with valid=False and the reason (which starts with the
  path), for the pipeline to drop, count and, when nothing decodes, report; the run goes on.
  """
  label = np.int32(record['label'])
  try:
    image = decoding.load_image(record['path'], size, max_pixels=max_pixels)
    valid, reason = True, ''
  except decoding.DecodeError as e:
    logging.warning('Skipping unreadable image: %s', e)  # e starts with the path
    image, valid, reason = np.zeros((size, size, 3), np.uint8), False, str(e)
  return {'image': image, 'label': label, 'valid': np.bool_(valid), 'reason': np.str_(reason)}
