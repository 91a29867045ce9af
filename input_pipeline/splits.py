"""The train/test splits of the labelled sources (input_pipeline/sources.py), and their source.

Splits (data.split): 'folders' (separate train and test inputs, the folder layout), 'file' (a
split file: `relative/path train|test`, or CelebA's list_eval_partition.txt with 0/1/2),
'column' (the CSV's split column), 'fraction' (data.test_fraction of the items, seeded by
data.split_seed), or 'identity' (data.test_fraction of the identities, so no test identity is
ever trained on; layouts that carry identities: KDEF, RaFD, and any pattern or CSV with an
identity).
"""

import os

import numpy as np

from input_pipeline import folders
from input_pipeline.sources import DataError
from input_pipeline.sources import Item
from input_pipeline.sources import Problems
from input_pipeline.sources import read_attributes
from input_pipeline.sources import read_csv
from input_pipeline.sources import read_filenames
from input_pipeline.sources import SPLITS


def read_split_file(path: str, problems: Problems) -> dict[str, str]:
  """`relative/path split` lines (split: train/test, or CelebA's 0/1/2 = train/val/test) ->
  {file name or relative path: 'train' | 'val' | 'test'}."""
  if not os.path.isfile(path):
    raise DataError(f'split file {path!r} does not exist (config.data.split_file)')
  names = {'0': 'train', '1': 'val', '2': 'test', 'train': 'train', 'val': 'val', 'test': 'test'}
  out = {}
  with open(path) as f:
    for line, text in enumerate(f, start=1):
      fields = text.split()
      if not fields:
        continue
      if len(fields) != 2 or fields[1] not in names:
        problems.add(f'{path}:{line}', 'expected "<file> <train|val|test|0|1|2>"')
        continue
      out[fields[0]] = names[fields[1]]
  return out


def assign_split(
  items: list[Item],
  how: str,
  split: str,
  root: str = '',
  split_map=None,
  test_fraction: float = 0.2,
  seed: int = 0,
) -> list[Item]:
  """The items of `split` ('train' or 'test') under the rule `how` (see the module docstring)."""
  if how == 'folders':
    return items
  if how == 'column':
    bad = sorted({i.split for i in items} - {'train', 'test', 'val'})
    if bad:
      raise DataError(f'split column values {bad}: use train, val or test')
    return [i for i in items if i.split == split]
  if how == 'file':
    keep = []
    for item in items:
      rel = os.path.relpath(item.path, root) if root else os.path.basename(item.path)
      got = split_map.get(rel, split_map.get(os.path.basename(item.path)))
      if got == split:
        keep.append(item)
    return keep
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f'config.data.test_fraction = {test_fraction}: use a value in (0, 1)')
  rng = np.random.default_rng(seed)
  if how == 'fraction':
    order = rng.permutation(len(items))
    n_test = int(round(test_fraction * len(items)))
    chosen = set(order[:n_test].tolist())
    return [it for k, it in enumerate(items) if (k in chosen) == (split == 'test')]
  if how == 'identity':
    ids = sorted({i.identity for i in items})
    if not ids or ids == ['']:
      raise DataError(
        'config.data.split = identity, but this layout carries no identities '
        '(use a filename preset or pattern with (?P<identity>...), or a CSV '
        'identity column)'
      )
    order = rng.permutation(len(ids))
    n_test = max(1, int(round(test_fraction * len(ids))))
    test_ids = {ids[k] for k in order[:n_test]}
    return [it for it in items if (it.identity in test_ids) == (split == 'test')]
  raise ValueError(f'config.data.split = {how!r}: use one of {SPLITS}')


class ItemSource(folders.FileListSource):
  """A FileListSource from Items, keeping each item's identity, intensity and any attribute
  vector; `problems` holds what was left out and why."""

  def __init__(
    self,
    items: list[Item],
    class_names,
    problems: Problems,
    name: str,
    attributes: np.ndarray | None = None,
  ):
    super().__init__([i.path for i in items], [i.label for i in items], class_names)
    self.identities = [i.identity for i in items]
    self.intensities = np.asarray([i.intensity for i in items], np.float32)
    self.attributes = attributes
    self.problems = problems.items
    self.name = name
    problems.log(name)


def make_labelled_source(data, split: str) -> ItemSource:
  """The csv, attributes or filename source of `data` (a config.data), for `split`."""
  problems = Problems(data.get('on_error', 'stop'))
  how = data.get('split', 'folders')
  class_names = tuple(data.get('class_names', ()) or ())
  attributes = None
  if data.source == 'csv':
    path = data.csv if how != 'folders' else (data.csv if split == 'train' else data.test_csv)
    items, names = read_csv(path, class_names, problems)
    root = os.path.dirname(os.path.abspath(path))
  elif data.source == 'attributes':
    if how in ('folders', 'column'):
      raise ValueError(
        f'config.data.split = {how!r} does not apply to an attribute file: use '
        "'file' (CelebA's list_eval_partition.txt), 'fraction' or 'identity'"
      )
    items, names, attributes = read_attributes(
      data.attribute_file, data.image_dir, tuple(data.attributes), problems
    )
    root = data.image_dir
  elif data.source == 'filename':
    root = data.root if how != 'folders' else (data.root if split == 'train' else data.test_root)
    items, names = read_filenames(
      root, data.filename_pattern, class_names, data.get('filename_filter', ''), problems
    )
  else:
    raise ValueError(f'not a labelled-file source: {data.source!r}')
  split_map = read_split_file(data.split_file, problems) if how == 'file' else None
  keep = assign_split(
    items, how, split, root, split_map, data.get('test_fraction', 0.2), data.get('split_seed', 0)
  )
  if attributes is not None:
    index = {id(it): k for k, it in enumerate(items)}
    attributes = attributes[[index[id(it)] for it in keep]]
  if not keep:
    raise DataError(
      f'the {data.source} source holds no usable {split} images '
      f'({len(problems.items)} items left out'
      + (f', e.g. {problems.items[0][0]}: {problems.items[0][1]})' if problems.items else ')')
    )
  return ItemSource(keep, names, problems, f'{data.source} {split}', attributes)
