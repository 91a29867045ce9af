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

--out may be a gs:// or s3:// URL: its store is checked first (a one-line error for an
unreachable endpoint, a missing bucket or refused credentials), each shard is written in a local
temporary folder and uploaded with its JSON as soon as it is complete (an object appears whole),
and meta.json is uploaded last; a rerun skips the shards already in the bucket.
"""

import json
import math
import multiprocessing
import os
import shutil
import tempfile

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import tqdm

from input_pipeline import groups
from input_pipeline import pipeline
from input_pipeline import records
from jaxpr_gan import files
from jaxpr_gan import storage
from jaxpr_gan import storage_check


def _write_shard(task) -> dict:
  """(source, start, end, path, size, max_pixels) -> the shard's counts; writes path atomically."""
  source, start, end, path, size, max_pixels = task
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

  os.makedirs(os.path.dirname(path), exist_ok=True)
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


def _plan(data, out: str, splits, shard_size: int, meta: dict, staging: str):
  """Fills meta's class names, groups and shard counts; -> (tasks to run, finished summaries).
  Finished shards are looked for in `out`; new ones are written to `staging`."""
  tasks, finished = [], {}
  done = set(storage.listdir(out)) if storage.isdir(out) else set()
  for split in splits:
    source, parts = _parts(data, split)
    meta['class_names'] = list(source.class_names)
    if isinstance(source, groups.TwoGroupSource):
      meta['groups'] = list(source.group_names)
    for prefix, part in parts:
      count = max(1, math.ceil(len(part) / shard_size))
      meta['shards'][prefix] = count
      for k in range(count):
        name = records.shard_name(prefix, k, count)
        if name in done and name + '.json' in done:
          summary = json.loads(storage.read_text(storage.join(out, name + '.json')))
          finished.setdefault(prefix, []).append(summary)
          continue
        tasks.append(
          (
            prefix,
            (
              part,
              k * shard_size,
              min(len(part), (k + 1) * shard_size),
              # A folder per shard on a bucket: uploaded alone when complete.
              os.path.join(staging, name if storage.is_remote(out) else '', name),
              data.image_size,
              pipeline.max_pixels(data),
            ),
          )
        )
  return tasks, finished


def _upload(path: str, out: str) -> None:
  """Moves a finished shard and its JSON from their local staging folder to the bucket `out`."""
  if storage.is_remote(out):
    storage.put_folder(os.path.dirname(path), out)
    shutil.rmtree(os.path.dirname(path))


def _run(tasks, finished: dict, out: str, workers: int) -> dict:
  """Writes the shards of tasks (uploading each to a bucket `out` when it is complete);
  -> {prefix: [shard summary]}, finished ones included."""
  total = sum(t[1][2] - t[1][1] for t in tasks)
  results = dict(finished)
  with tqdm.tqdm(total=total, unit='img', desc=f'prepare -> {out}') as bar:
    if workers > 1 and len(tasks) > 1:
      with multiprocessing.get_context('spawn').Pool(workers) as pool:
        for (prefix, task), summary in zip(tasks, pool.imap(_write_shard, [t[1] for t in tasks])):
          _upload(task[3], out)
          results.setdefault(prefix, []).append(summary)
          bar.update(summary['items'])
    else:
      for prefix, task in tasks:
        summary = _write_shard(task)
        _upload(task[3], out)
        results.setdefault(prefix, []).append(summary)
        bar.update(summary['items'])
  return results


def prepare(
  config, out: str, splits=('train', 'test'), shard_size: int = 2000, workers: int = 2
) -> dict:
  """Writes the ArrayRecord data set to `out` (a folder, gs:// or s3://); -> its meta."""
  if not storage.is_remote(out):
    return _prepare(config, out, splits, shard_size, workers, out)
  storage_check.check_reachable(out)
  with tempfile.TemporaryDirectory(prefix='jaxpr_gan-prepare-') as staging:
    return _prepare(config, out, splits, shard_size, workers, staging)


def _prepare(config, out: str, splits, shard_size: int, workers: int, staging: str) -> dict:
  data = config.data
  os.makedirs(staging, exist_ok=True)
  meta = {
    'image_size': data.image_size,
    'source': data.source,
    'shards': {},
    'counts': {},
    'skipped': {},
    'data': data.to_dict(),
  }
  tasks, finished = _plan(data, out, splits, shard_size, meta, staging)
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
  if storage.is_remote(out):
    storage.write_text(
      storage.join(out, records.META_FILE), files.dumps_json(meta, indent=1) + '\n'
    )
  else:
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
