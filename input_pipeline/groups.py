"""Two-group sources: unpaired domains (CycleGAN) and neutral/emotional groups (2CET-GAN).

A `TwoGroupSource` holds two random-access sources. Training reads them as two independently
shuffled streams zipped together (input_pipeline.pipeline), so no pairing is ever fixed; indexing
the source itself (`source[i]`) pairs item i of each group, for sample pictures only. Folder
roots may be gs:// or s3:// URLs (see input_pipeline.folders).
"""

from __future__ import annotations

from collections.abc import Sequence
import os

import numpy as np

from input_pipeline import decoding
from input_pipeline import folders
from input_pipeline import synthetic
from jaxpr_gan import storage
from jaxpr_gan import storage_check

EXPECTED_DOMAIN_LAYOUT = (
  "root/{train,test}A/*.jpg and root/{train,test}B/*.jpg (CycleGAN's "
  'layout: one folder of images per domain and split)'
)
EXPECTED_GROUP_LAYOUT = (
  'root/{train,test}/neutral/*.jpg and root/{train,test}/emotional/'
  '[<expression>/]*.jpg (2CET-GAN: neutral faces, emotional faces with '
  'optional expression subfolders)'
)


class Subset:
  """The items `indices` of a random-access source, keeping its records and class names."""

  def __init__(self, source, indices: Sequence[int]):
    self._source = source
    self._indices = np.asarray(indices, np.int64)
    self.class_names = tuple(source.class_names)

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index) -> dict:
    return self._source[int(self._indices[int(index)])]

  def labels(self) -> np.ndarray:
    return self._source.labels()[self._indices]

  def __repr__(self) -> str:
    return f'Subset({self._source!r}, {len(self)} items)'


class TwoGroupSource:
  """Groups `a` and `b`; `class_names` are the run's names (domains, or expression classes)."""

  def __init__(self, a, b, group_names: Sequence[str], class_names: Sequence[str]):
    for name, group in zip(group_names, (a, b)):
      if len(group) == 0:
        raise ValueError(f'the {name!r} group holds no images.')
    self.groups = (a, b)
    self.group_names = tuple(group_names)
    self.class_names = tuple(class_names)

  def __len__(self) -> int:
    return max(len(g) for g in self.groups)

  def __getitem__(self, index) -> dict:
    i = int(index)
    a, b = self.groups
    return {'a': a[i % len(a)], 'b': b[i % len(b)]}

  def __repr__(self) -> str:
    a, b = self.groups
    return (
      f'TwoGroupSource({self.group_names[0]}: {len(a)}, {self.group_names[1]}: {len(b)}, '
      f'classes {list(self.class_names)})'
    )


def list_images(folder: str, layout: str) -> list[str]:
  """Image files under `folder` (recursively, sorted); a missing or empty folder is an error."""
  storage_check.check_reachable(folder)
  if not storage.isdir(folder):
    raise folders.DatasetLayoutError(f'{folder!r} is not a directory. Expected layout: {layout}')
  paths = []
  for root, dirs, files in folders.walk(folder):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    paths.extend(
      storage.join(root, f)
      for f in sorted(files)
      if not f.startswith('.') and f.lower().endswith(decoding.IMAGE_EXTENSIONS)
    )
  if not paths:
    raise folders.DatasetLayoutError(
      f'{folder!r} holds no image files '
      f'({"/".join(decoding.IMAGE_EXTENSIONS)}). Expected '
      f'layout: {layout}'
    )
  return paths


def synthetic_domains(
  split: str, size: int, num_classes: int, styles: Sequence[str], seed: int = 0
) -> TwoGroupSource:
  """The synthetic faces in two styles (all expressions each): A = styles[0], B = styles[1]."""
  a, b = (
    synthetic.SyntheticFaces(split=split, size=size, num_classes=num_classes, style=s, seed=seed)
    for s in styles
  )
  return TwoGroupSource(a, b, tuple(styles), tuple(styles))


def folder_domains(root: str, split: str) -> TwoGroupSource:
  """root/<split>A and root/<split>B; labels are the domain (0 for A, 1 for B)."""
  names = ('A', 'B')
  dirs = [storage.join(root, f'{split}{n}') for n in names]
  lists = [list_images(d, EXPECTED_DOMAIN_LAYOUT) for d in dirs]
  a, b = (
    folders.FileListSource(p, [k] * len(p), names, root=d)
    for k, (p, d) in enumerate(zip(lists, dirs))
  )
  return TwoGroupSource(a, b, names, names)


def synthetic_groups(
  split: str, size: int, num_classes: int, style: str, intensity_range=(1.0, 1.0), seed: int = 0
) -> TwoGroupSource:
  """Neutral faces (class 0) and emotional faces (classes 1..) of the synthetic identities."""
  faces = synthetic.SyntheticFaces(
    split=split,
    size=size,
    num_classes=num_classes,
    style=style,
    intensity_range=intensity_range,
    seed=seed,
  )
  index = np.arange(len(faces))
  neutral = Subset(faces, index[index % num_classes == 0])
  emotional = Subset(faces, index[index % num_classes != 0])
  return TwoGroupSource(neutral, emotional, ('neutral', 'emotional'), faces.class_names)


def _relative_parts(path: str, folder: str) -> list[str]:
  """The parts of `path` below `folder`: ['sub', 'x.jpg'] (a local path or a URL)."""
  if storage.is_remote(path):
    return path[len(folder.rstrip('/')) + 1 :].split('/')
  return os.path.relpath(path, folder).split(os.sep)


def folder_groups(root: str, split: str) -> TwoGroupSource:
  """root/<split>/neutral and root/<split>/emotional[/<expression>]; labels index the classes
  ('neutral' first, then the expression subfolders, or 'emotional' when there are none)."""
  base = storage.join(root, split)
  neutral_dir = storage.join(base, 'neutral')
  neutral = list_images(neutral_dir, EXPECTED_GROUP_LAYOUT)
  emotional_dir = storage.join(base, 'emotional')
  emotional = list_images(emotional_dir, EXPECTED_GROUP_LAYOUT)
  subdirs = [d for d in folders.list_folder(emotional_dir)[0] if not d.startswith('.')]
  if subdirs:
    class_names = ('neutral', *subdirs)
    parts = [_relative_parts(p, emotional_dir) for p in emotional]
    labels = [1 + subdirs.index(rel[0]) if len(rel) > 1 else -1 for rel in parts]
    loose = [p for p, l in zip(emotional, labels) if l < 0]
    if loose:
      raise folders.DatasetLayoutError(
        f'{emotional_dir!r} has expression subfolders and also {len(loose)} images directly in '
        f'it (e.g. {loose[0]!r}); move them into a subfolder. Expected layout: '
        f'{EXPECTED_GROUP_LAYOUT}'
      )
  else:
    class_names, labels = ('neutral', 'emotional'), [1] * len(emotional)
  return TwoGroupSource(
    folders.FileListSource(neutral, [0] * len(neutral), class_names, root=neutral_dir),
    folders.FileListSource(emotional, labels, class_names, root=emotional_dir),
    ('neutral', 'emotional'),
    class_names,
  )
