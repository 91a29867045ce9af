"""Looks at a configured data set before training on it.

  python -m input_pipeline.inspect --config configs/stargan.py --out inspect_rafd \
      --config.data.source=filename --config.data.root=/data/rafd --config.data.split=identity \
      --config.data.filename_pattern=rafd

Per split (and group): images per class; the original image sizes (a histogram of width x
height); the files that do not decode, with the reason; exact duplicates by content hash (of
the file, or of the pixels for pre-decoded sources); the items the source left out (bad CSV or
attribute lines, unmatched file names), with their line numbers; and a contact sheet PNG with a
row of samples per class. Writes report.json (strict JSON) and contact_sheet_<split>.png to --out,
each atomically, and prints a summary.

Files are decoded as training decodes them (`decoding.decode_image`, with data.max_pixels), so
every file training would skip is listed with the same reason: decompression bombs and images
over the pixel limit included. No one file stops the inspection.
"""

import collections
import hashlib
import os

from absl import app
from absl import flags
from ml_collections import config_flags
import numpy as np
from PIL import Image
import tqdm

from input_pipeline import decoding
from input_pipeline import groups
from input_pipeline import pipeline
from jaxpr_gan import files
from jaxpr_gan import images


def _sheet(examples: dict[int, list[np.ndarray]], class_names, size: int, per_class: int):
  """Rows of up to `per_class` samples per class on white, 2 px gaps."""
  gap = 2
  sheet = np.full(
    (len(class_names) * (size + gap) + gap, per_class * (size + gap) + gap, 3), 255, np.uint8
  )
  for row, _ in enumerate(class_names):
    for col, image in enumerate(examples.get(row, [])[:per_class]):
      y, x = gap + row * (size + gap), gap + col * (size + gap)
      sheet[y : y + size, x : x + size] = image
  return sheet


def _inspect_file(path: str, size: int, max_pixels: int):
  """-> (image or None, 'WxH' or None, content digest or None, reason or None) of one file."""
  try:
    data = decoding.read_file(path)
  except decoding.DecodeError as e:
    return None, None, None, str(e).removeprefix(f'{path}: ')
  shape = image = None
  try:
    w, h = decoding.header_size(data)  # the header only: fine on a decompression bomb
    shape = f'{w}x{h}'
    image = decoding.decode_image(data, size, max_pixels=max_pixels)
  except decoding.DecodeError as e:
    return None, shape, None, str(e)
  except Exception as e:  # pylint: disable=broad-except  (a report lists every bad file)
    return None, shape, None, f'{type(e).__name__}: {e}'
  return image, shape, hashlib.sha1(data).hexdigest(), None


def inspect_source(
  source, size: int, per_class: int = 8, max_items: int = 0, max_pixels: int = decoding.MAX_PIXELS
) -> tuple[dict, np.ndarray]:
  """-> (report, contact sheet) of one labelled source."""
  names = list(source.class_names)
  counts = collections.Counter()
  sizes = collections.Counter()
  unreadable, hashes = [], collections.defaultdict(list)
  samples = collections.defaultdict(list)
  n = len(source) if not max_items else min(len(source), max_items)
  for i in tqdm.tqdm(range(n), unit='img', desc='inspect'):
    record = source[i]
    label = int(record['label'])
    counts[names[label]] += 1
    if 'path' in record:
      path = record['path']
      image, shape, digest, reason = _inspect_file(path, size, max_pixels)
      if shape:
        sizes[shape] += 1
      if reason:
        unreadable.append({'file': path, 'reason': reason})
        continue
      hashes[digest].append(path)
    else:
      image = np.asarray(record['image'])
      sizes[f'{image.shape[1]}x{image.shape[0]}'] += 1
      hashes[hashlib.sha1(image.tobytes()).hexdigest()].append(str(i))
      if image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image).resize((size, size)))
    if len(samples[label]) < per_class:
      samples[label].append(image)
  report = {
    'images': n,
    'per_class': {c: counts.get(c, 0) for c in names},
    'sizes': dict(sizes.most_common()),
    'unreadable': unreadable,
    'duplicates': [paths for paths in hashes.values() if len(paths) > 1],
    'left_out': [{'where': w, 'why': y} for w, y in getattr(source, 'problems', [])],
  }
  return report, _sheet(samples, names, size, per_class)


def inspect(config, out: str, per_class: int = 8, max_items: int = 0) -> dict:
  """Inspects every split (and group) of config.data; writes the report and sheets to `out`."""
  os.makedirs(out, exist_ok=True)
  limit = pipeline.max_pixels(config.data)
  report = {'source': config.data.source}
  for split in ('train', 'test'):
    source = pipeline.make_source(config.data, split)
    parts = (
      [(f'{split}-{n}', g) for n, g in zip(source.group_names, source.groups)]
      if isinstance(source, groups.TwoGroupSource)
      else [(split, source)]
    )
    for name, part in parts:
      part_report, sheet = inspect_source(part, config.data.image_size, per_class, max_items, limit)
      part_report['contact_sheet'] = f'contact_sheet_{name}.png'
      images.save_png(os.path.join(out, part_report['contact_sheet']), sheet)
      report[name] = part_report
  files.write_json(os.path.join(out, 'report.json'), report)
  return report


def summary(report: dict) -> str:
  lines = []
  for name, r in report.items():
    if not isinstance(r, dict):
      continue
    lines.append(f'{name}: {r["images"]} images; per class {r["per_class"]}')
    top = list(r['sizes'].items())[:5]
    lines.append(f'  sizes (most common): {", ".join(f"{s} x{c}" for s, c in top)}')
    lines.append(
      f'  unreadable: {len(r["unreadable"])}; duplicate groups: '
      f'{len(r["duplicates"])}; left out by the source: {len(r["left_out"])}'
    )
    for u in r['unreadable'][:3]:
      lines.append(f'    {u["file"]}: {u["reason"]}')
    for d in r['duplicates'][:3]:
      lines.append(f'    same content: {", ".join(d)}')
    for item in r['left_out'][:3]:
      lines.append(f'    {item["where"]}: {item["why"]}')
    lines.append(f'  contact sheet: {r["contact_sheet"]}')
  return '\n'.join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  report = inspect(_CONFIG.value, _OUT.value, _PER_CLASS.value, _MAX_ITEMS.value)
  print(summary(report))
  print(f'report: {os.path.join(_OUT.value, "report.json")}')


if __name__ == '__main__':
  _CONFIG = config_flags.DEFINE_config_file('config', None, 'Config whose data to inspect.')
  _OUT = flags.DEFINE_string('out', None, 'Output directory.')
  _PER_CLASS = flags.DEFINE_integer('per_class', 8, 'Samples per class on the contact sheet.')
  _MAX_ITEMS = flags.DEFINE_integer('max_items', 0, 'Look at the first N items only (0: all).')
  flags.mark_flags_as_required(['config', 'out'])
  from jaxpr_gan import cli  # pylint: disable=g-import-not-at-top

  cli.run(main)
