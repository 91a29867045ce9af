"""Converts any configured data source into sharded ArrayRecord files, decoded once.

  python -m input_pipeline.prepare --config configs/stargan.py --out /data/rafd_128 \
      --config.data.source=folder --config.data.train_dir=... --config.data.test_dir=...
  python train.py --config configs/stargan.py --workdir ... \
      --config.data.source=array_record --config.data.array_record_dir=/data/rafd_128

Every image is decoded, cropped and resized to data.image_size here, in --workers processes,
so training reads raw pixels (`input_pipeline.records`). Shards keep the source's order, so a
run on the prepared set reads the same batches as on the source (same seed). Unreadable images
are left out and listed in meta.json (images over data.max_pixels too, as in training). A shard
is written under a temporary name and renamed when complete, with a small JSON of its counts
beside it: an interrupted preparation, rerun, skips the finished shards. meta.json (class names,
counts per class, shards) is written last; until it exists the directory is not a data set.
Every JSON is strict and written atomically (`jaxpr_gan.files.write_json`).
"""

import json
import math
import multiprocessing
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import tqdm

from input_pipeline import groups
from input_pipeline import pipeline
from input_pipeline import records
from jaxpr_gan import files


def _write_shard(task) -> dict:
  """(source, start, end, path, size, max_pixels) -> the shard's counts; writes path atomically."""
  source, start, end, path, size, max_pixels = task
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

  to_example = pipeline.ToExample(size, max_pixels)
  counts, skipped = {}, []
  tmp = path + '.tmp'
  writer = array_record_module.ArrayRecordWriter(tmp, 'group_size:1')
  for i in range(start, end):
    record = source[i]
    example = to_example.map(record)
    if not example['valid']:
      skipped.append(str(record.get('path', i)))
      continue
    label = int(example['label'])
    writer.write(records.encode(example['image'], label))
    counts[label] = counts.get(label, 0) + 1
  writer.close()
  summary = {'counts': counts, 'skipped': skipped, 'items': end - start}
  files.write_json(path + '.json', summary, indent=None)
  os.replace(tmp, path)
  return summary


def _parts(data, split: str):
  """[(file prefix, source)] of a split: one, or one per group of a two-group source."""
  source = pipeline.make_source(data, split)
  if isinstance(source, groups.TwoGroupSource):
    return source, [(f'{split}-{name}', g) for name, g in zip(source.group_names, source.groups)]
  return source, [(split, source)]


def _plan(data, out: str, splits, shard_size: int, meta: dict):
  """Fills meta's class names, groups and shard counts; -> (tasks to run, finished summaries)."""
  tasks, finished = [], {}
  for split in splits:
    source, parts = _parts(data, split)
    meta['class_names'] = list(source.class_names)
    if isinstance(source, groups.TwoGroupSource):
      meta['groups'] = list(source.group_names)
    for prefix, part in parts:
      count = max(1, math.ceil(len(part) / shard_size))
      meta['shards'][prefix] = count
      for k in range(count):
        path = os.path.join(out, records.shard_name(prefix, k, count))
        if os.path.exists(path) and os.path.exists(path + '.json'):
          with open(path + '.json') as f:
            finished.setdefault(prefix, []).append(json.load(f))
          continue
        tasks.append(
          (
            prefix,
            (
              part,
              k * shard_size,
              min(len(part), (k + 1) * shard_size),
              path,
              data.image_size,
              pipeline.max_pixels(data),
            ),
          )
        )
  return tasks, finished


def _run(tasks, finished: dict, out: str, workers: int) -> dict:
  """Writes the shards of tasks; -> {prefix: [shard summary]}, finished ones included."""
  total = sum(t[1][2] - t[1][1] for t in tasks)
  results = dict(finished)
  with tqdm.tqdm(total=total, unit='img', desc=f'prepare -> {out}') as bar:
    if workers > 1 and len(tasks) > 1:
      with multiprocessing.get_context('spawn').Pool(workers) as pool:
        for prefix, summary in zip(
          [t[0] for t in tasks], pool.imap(_write_shard, [t[1] for t in tasks])
        ):
          results.setdefault(prefix, []).append(summary)
          bar.update(summary['items'])
    else:
      for prefix, task in tasks:
        summary = _write_shard(task)
        results.setdefault(prefix, []).append(summary)
        bar.update(summary['items'])
  return results


def prepare(
  config, out: str, splits=('train', 'test'), shard_size: int = 2000, workers: int = 2
) -> dict:
  """Writes the ArrayRecord data set; -> its meta."""
  data = config.data
  os.makedirs(out, exist_ok=True)
  meta = {
    'image_size': data.image_size,
    'source': data.source,
    'shards': {},
    'counts': {},
    'skipped': {},
    'data': data.to_dict(),
  }
  tasks, finished = _plan(data, out, splits, shard_size, meta)
  if finished:
    logging.info('Resuming: %d shards already written.', sum(map(len, finished.values())))
  results = _run(tasks, finished, out, workers)
  names = meta['class_names']
  for prefix, summaries in results.items():
    counts = {}
    for s in summaries:
      for label, n in s['counts'].items():
        counts[names[int(label)]] = counts.get(names[int(label)], 0) + n
    meta['counts'][prefix] = counts
    meta['skipped'][prefix] = sorted(p for s in summaries for p in s['skipped'])
  files.write_json(os.path.join(out, records.META_FILE), meta)
  return meta


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  meta = prepare(_CONFIG.value, _OUT.value, tuple(_SPLITS.value), _SHARD_SIZE.value, _WORKERS.value)
  for prefix, counts in meta['counts'].items():
    print(
      f'{prefix}: {sum(counts.values())} images {counts}; left out {len(meta["skipped"][prefix])}'
    )
  print(f'train with --config.data.source=array_record --config.data.array_record_dir={_OUT.value}')


if __name__ == '__main__':
  _CONFIG = config_flags.DEFINE_config_file('config', None, 'Config whose data to convert.')
  _OUT = flags.DEFINE_string('out', None, 'Output directory.')
  _SPLITS = flags.DEFINE_list('splits', ['train', 'test'], 'Splits to convert.')
  _SHARD_SIZE = flags.DEFINE_integer('shard_size', 2000, 'Images per shard.')
  _WORKERS = flags.DEFINE_integer('workers', 2, 'Worker processes.')
  flags.mark_flags_as_required(['config', 'out'])
  from jaxpr_gan import cli  # pylint: disable=g-import-not-at-top

  cli.run(main)
