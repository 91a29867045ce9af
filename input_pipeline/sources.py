"""Labelled image sources in the layouts real data sets come in: their readers and problems.

  csv         a CSV with a header: path,label[,intensity][,split] (AffectNet-style exports);
              paths relative to the CSV's folder; labels are class names (or indices into
              data.class_names).
  attributes  a CelebA-style attribute file: a count line, a line of attribute names, then
              `file.jpg 1 -1 ...`; data.attributes selects the attributes.
  filename    labels (and identities) coded in file names, matched by a regular expression
              with named groups `label` and optionally `identity`: presets 'kdef'
              (AF01ANS.JPG) and 'rafd' (Rafd090_01_Caucasian_female_angry_frontal.jpg), or your
              own pattern.
Every source lists files up front (nothing is decoded until the pipeline maps the records) and
checks each line: a missing file, a label outside the class list, a malformed line, a file name
that does not match. With data.on_error 'stop' the first problem raises a DataError naming the
file and line; with 'skip' the item is left out, and the problems are counted, logged, and
listed (`write_problems`) in the run directory.

The train/test splits (data.split) and the source of one split: input_pipeline/splits.py.
"""

from collections.abc import Sequence
import csv
import dataclasses
import os
import re

from absl import logging
import numpy as np

from jaxpr_gan import files

LABELLED_SOURCES = ('csv', 'attributes', 'filename')
SPLITS = ('folders', 'file', 'column', 'fraction', 'identity')
ON_ERROR = ('skip', 'stop')

KDEF_CODES = {
  'AF': 'afraid',
  'AN': 'angry',
  'DI': 'disgusted',
  'HA': 'happy',
  'NE': 'neutral',
  'SA': 'sad',
  'SU': 'surprised',
}
FILENAME_PRESETS = {
  # KDEF: session A/B, sex F/M and number (the identity), expression code, angle.
  'kdef': r'^[AB](?P<identity>[FM]\d\d)(?P<label>AF|AN|DI|HA|NE|SA|SU)'
  r'(?P<angle>S|HL|HR|FL|FR)\.(?i:jpe?g|png)$',
  # RaFD: camera angle, identity, ethnicity, gender, expression, gaze.
  'rafd': r'^Rafd(?P<angle>\d{3})_(?P<identity>\d+)_(?P<ethnicity>[A-Za-z]+)_'
  r'(?P<gender>[a-z]+)_(?P<label>[a-z]+)_(?P<gaze>[a-z]+)\.(?i:jpe?g|png)$',
}
FILENAME_LABEL_NAMES = {'kdef': KDEF_CODES}


class DataError(ValueError):
  """A line or file of a data set that cannot be used; the message names where and why."""


@dataclasses.dataclass
class Item:
  path: str
  label: int
  identity: str = ''
  intensity: float = 1.0
  split: str = ''


class Problems:
  """Collects (where, why) of unusable lines; raises at once under on_error 'stop'."""

  def __init__(self, on_error: str):
    if on_error not in ON_ERROR:
      raise ValueError(f"config.data.on_error = {on_error!r}: use 'skip' or 'stop'.")
    self.on_error = on_error
    self.items: list[tuple[str, str]] = []

  def add(self, where: str, why: str) -> None:
    if self.on_error == 'stop':
      raise DataError(
        f'{where}: {why} (set --config.data.on_error=skip to leave such items out and list them)'
      )
    self.items.append((where, why))

  def log(self, name: str) -> None:
    if self.items:
      logging.warning('%s: %d items left out, e.g. %s: %s', name, len(self.items), *self.items[0])


def _check_file(path: str, where: str, problems: Problems) -> bool:
  if not os.path.isfile(path):
    problems.add(where, f'image file {path!r} does not exist')
    return False
  return True


def _csv_rows(csv_path: str) -> tuple[list[tuple], list[tuple[int, str]]]:
  """-> (rows (line, path, label, intensity, split, identity), problems (line, why))."""
  if not os.path.isfile(csv_path):
    raise DataError(f'CSV file {csv_path!r} does not exist (config.data.csv)')
  base = os.path.dirname(os.path.abspath(csv_path))
  with open(csv_path, newline='') as f:
    rows = list(csv.reader(f))
  if not rows:
    raise DataError(f'{csv_path} is empty; expected a header path,label[,intensity][,split]')
  header = [h.strip().lower() for h in rows[0]]
  if 'path' not in header or 'label' not in header:
    raise DataError(
      f'{csv_path}:1: the header {rows[0]} needs columns "path" and "label" '
      '(optional: "intensity", "split", "identity")'
    )
  col = {name: header.index(name) for name in header}
  raw, found = [], []  # found: (line, why), reported in line order once the classes are known
  for line, row in enumerate(rows[1:], start=2):
    if not row or all(not c.strip() for c in row):
      continue
    if len(row) != len(header):
      found.append((line, f'{len(row)} fields, the header has {len(header)}'))
      continue
    path, label = row[col['path']].strip(), row[col['label']].strip()
    if not path or not label:
      found.append((line, 'empty path or label'))
      continue
    intensity = 1.0
    if 'intensity' in col:
      try:
        intensity = float(row[col['intensity']])
      except ValueError:
        found.append((line, f'intensity {row[col["intensity"]]!r} is not a number'))
        continue
    raw.append(
      (
        line,
        os.path.join(base, path),
        label,
        intensity,
        row[col['split']].strip() if 'split' in col else '',
        row[col['identity']].strip() if 'identity' in col else '',
      )
    )
  return raw, found


def read_csv(
  csv_path: str, class_names: Sequence[str], problems: Problems
) -> tuple[list[Item], tuple[str, ...]]:
  """-> (items, class names). Without `class_names` the classes are the sorted labels found."""
  raw, found = _csv_rows(csv_path)
  names = tuple(class_names) or tuple(sorted({r[2] for r in raw}))
  items = []
  for line, path, label, intensity, split, identity in raw:
    if label in names:
      index = names.index(label)
    elif label.isdigit() and class_names and int(label) < len(names):
      index = int(label)
    else:
      found.append((line, f'label {label!r} is not one of the classes {list(names)}'))
      continue
    if not os.path.isfile(path):
      found.append((line, f'image file {path!r} does not exist'))
      continue
    items.append(Item(path, index, identity, intensity, split))
  for line, why in sorted(found):
    problems.add(f'{csv_path}:{line}', why)
  return items, names


def read_attributes(
  attr_path: str, image_dir: str, attributes: Sequence[str], problems: Problems
) -> tuple[list[Item], tuple[str, ...], np.ndarray]:
  """-> (items, selected attribute names, their values per item (N, A) in {0, 1}).

  An item's class is its first selected attribute that is on; items with none on are left out
  (counted), since the models take one class per face.
  """
  if not os.path.isfile(attr_path):
    raise DataError(f'attribute file {attr_path!r} does not exist (config.data.attribute_file)')
  with open(attr_path) as f:
    lines = f.read().splitlines()
  if len(lines) < 2:
    raise DataError(f'{attr_path}: expected a count line and a line of attribute names')
  names = lines[1].split()
  unknown = [a for a in attributes if a not in names]
  if unknown or not attributes:
    raise DataError(
      f'{attr_path}:2: attribute(s) {unknown or "(none selected)"} not in the file; '
      f'it has {names}. Set config.data.attributes.'
    )
  cols = [names.index(a) for a in attributes]
  items, values = [], []
  none_on = 0
  for line, text in enumerate(lines[2:], start=3):
    where = f'{attr_path}:{line}'
    fields = text.split()
    if not fields:
      continue
    if len(fields) != len(names) + 1:
      problems.add(where, f'{len(fields) - 1} values, the header names {len(names)} attributes')
      continue
    try:
      row = [int(fields[1 + c]) for c in cols]
    except ValueError:
      problems.add(where, 'a value is not an integer')
      continue
    if any(v not in (1, -1, 0) for v in row):
      problems.add(where, f'values {row} are not 1 / -1')
      continue
    on = [v == 1 for v in row]
    if not any(on):
      none_on += 1
      continue
    path = os.path.join(image_dir, fields[0])
    if _check_file(path, where, problems):
      items.append(Item(path, on.index(True), split=''))
      values.append(on)
  if none_on:
    logging.info(
      '%s: %d images have none of %s and are left out.', attr_path, none_on, list(attributes)
    )
  return items, tuple(attributes), np.asarray(values, np.float32).reshape(-1, len(attributes))


def parse_filters(text: str) -> dict[str, str]:
  """'angle=S,gaze=frontal' -> {'angle': 'S', 'gaze': 'frontal'}."""
  out = {}
  for part in filter(None, (p.strip() for p in text.split(','))):
    if '=' not in part:
      raise ValueError(f'config.data.filename_filter part {part!r} is not group=value')
    k, v = part.split('=', 1)
    out[k.strip()] = v.strip()
  return out


def read_filenames(
  root: str, pattern: str, class_names: Sequence[str], filters: str, problems: Problems
) -> tuple[list[Item], tuple[str, ...]]:
  """Every image file under `root` (recursively) whose name matches `pattern` (a preset name or
  a regular expression with a `label` group and optionally `identity`)."""
  preset = pattern if pattern in FILENAME_PRESETS else ''
  regex = re.compile(FILENAME_PRESETS.get(pattern, pattern))
  if 'label' not in regex.groupindex:
    raise ValueError(f'config.data.filename_pattern {pattern!r} has no (?P<label>...) group')
  wanted = parse_filters(filters)
  bad = [k for k in wanted if k not in regex.groupindex]
  if bad:
    raise ValueError(
      f'config.data.filename_filter names {bad}, which the pattern does not '
      f'capture (groups: {list(regex.groupindex)})'
    )
  if not os.path.isdir(root):
    raise DataError(f'data root {root!r} is not a directory (config.data.root)')
  code_names = FILENAME_LABEL_NAMES.get(preset, {})
  found, unmatched = [], []
  for folder, dirs, names_here in os.walk(root):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    for name in sorted(names_here):
      if name.startswith('.'):
        continue
      path = os.path.join(folder, name)
      m = regex.match(name)
      if not m:
        if name.lower().endswith(('.jpg', '.jpeg', '.png', '.bmp', '.webp')):
          unmatched.append(path)
        continue
      if any(m.group(k) != v for k, v in wanted.items()):
        continue
      label = code_names.get(m.group('label'), m.group('label'))
      identity = m.group('identity') if 'identity' in regex.groupindex else ''
      found.append((path, label, identity))
  names = tuple(class_names) or tuple(sorted({label for _, label, _ in found}))
  items, bad = (
    [],
    [(p, f'file name does not match the pattern {regex.pattern!r}') for p in unmatched],
  )
  for path, label, identity in found:
    if label not in names:
      bad.append((path, f'label {label!r} is not one of the classes {list(names)}'))
      continue
    items.append(Item(path, names.index(label), identity))
  for path, why in sorted(bad):
    problems.add(path, why)
  return items, names


def write_problems(source, path: str) -> int:
  """Writes the source's left-out items ('where<TAB>why' per line) to `path`; -> their count."""
  problems = getattr(source, 'problems', None)
  if not problems:
    return 0
  if not files.is_remote(path):  # a bucket has no folders to make
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  files.write_text(path, ''.join(f'{where}\t{why}\n' for where, why in problems))
  return len(problems)
