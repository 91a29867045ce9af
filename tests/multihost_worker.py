"""One process of a multi-process training run on CPU, for tests/test_multihost.py.

  XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu \
    python -m tests.multihost_worker --process_id 0 --num_processes 2 --port 12345 \
    --data_dir DATA --workdir RUN --out RESULT.json

trains `config(DATA)` in RUN (shared by every process) and writes to RESULT.json what this process
saw: the metrics written at every step and the source index and label of every example it read.
`record_run` does the same in the calling process, for the single-process references.
tests/test_multihost.py starts it with `conftest.subprocess_env`'s settings.
"""

import argparse
import contextlib
import faulthandler
import json
import os
import signal
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(data_dir: str):
  """stargan tiny on an image folder of 24 faces: 3 iterations of batch 8 are one epoch."""
  from configs import stargan as stargan_config  # pylint: disable=g-import-not-at-top

  c = stargan_config.get_config('tiny')
  c.num_train_steps = 3
  c.n_critic = 1  # a D and a G update every iteration
  c.log_every = 1  # the metrics of every iteration are written
  c.checkpoint_every = 3  # one checkpoint, at the end
  c.data.update(source='folder', train_dir=data_dir, test_dir=data_dir, num_classes=3)
  return c


def write_faces(data_dir: str, num: int = 24) -> None:
  """`num` 16-px synthetic faces of 3 expressions as an image folder."""
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top

  with contextlib.redirect_stdout(sys.stderr):
    synthetic.main(['--out', data_dir, '--num', str(num), '--size', '16', '--num_classes', '3'])


class _RecordingWriter:
  """A clu writer that also keeps the scalars written, per step."""

  def __init__(self, writer, scalars: dict):
    self._writer, self._scalars = writer, scalars

  def write_scalars(self, step, scalars):
    self._scalars.setdefault(int(step), {}).update({k: float(v) for k, v in scalars.items()})
    self._writer.write_scalars(step, scalars)

  def __getattr__(self, name):
    return getattr(self._writer, name)


class _RecordingDataset:
  """The training dataset, keeping the source indices and labels of the batches taken."""

  def __init__(self, dataset, batches: list):
    self._dataset, self._batches = dataset, batches

  def __iter__(self):
    return _RecordingIterator(iter(self._dataset), self._batches)


class _RecordingIterator:
  def __init__(self, iterator, batches: list):
    self._iterator, self._batches = iterator, batches

  def __next__(self):
    batch = next(self._iterator)
    self._batches.append({'index': batch['index'].tolist(), 'label': batch['label'].tolist()})
    return batch

  def get_state(self):
    return self._iterator.get_state()

  def set_state(self, state):
    self._iterator.set_state(state)


def record_run(cfg, workdir: str, mesh=None) -> dict:
  """loop.train(cfg, workdir, mesh) -> what this process wrote and read, per step."""
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top

  from input_pipeline import pipeline  # pylint: disable=g-import-not-at-top
  from jaxpr_gan.training import loop  # pylint: disable=g-import-not-at-top

  scalars, batches, writers = {}, [], []
  make_writer, make_dataset = metric_writers.create_default_writer, pipeline.create_train_dataset

  def recording_writer(*args, **kwargs):
    writers.append('log only' if kwargs.get('just_logging') else 'tensorboard')
    return _RecordingWriter(make_writer(*args, **kwargs), scalars)

  def recording_dataset(*args, **kwargs):
    return _RecordingDataset(make_dataset(*args, **kwargs), batches)

  metric_writers.create_default_writer = recording_writer
  pipeline.create_train_dataset = recording_dataset
  try:
    loop.train(cfg, workdir, mesh=mesh)
  finally:
    metric_writers.create_default_writer = make_writer
    pipeline.create_train_dataset = make_dataset
  losses = {
    step: {k: v for k, v in s.items() if k.startswith(('D/', 'G/'))}
    for step, s in sorted(scalars.items())
  }
  return {
    'process_index': jax.process_index(),
    'process_count': jax.process_count(),
    'device_count': jax.device_count(),
    'local_device_count': jax.local_device_count(),
    'writers': writers,
    'losses': {str(k): v for k, v in losses.items()},
    'batches': batches,
  }


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--process_id', type=int, required=True)
  ap.add_argument('--num_processes', type=int, required=True)
  ap.add_argument('--port', type=int, required=True)
  ap.add_argument('--data_dir', required=True)
  ap.add_argument('--workdir', required=True)
  ap.add_argument('--out', required=True)
  args = ap.parse_args()
  faulthandler.register(signal.SIGUSR1)  # the test asks for every thread's stack before a kill
  sys.path.insert(0, REPO)
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.FLAGS.mark_as_parsed()  # grain reads absl flags
  from jaxpr_gan import checkpointing  # pylint: disable=g-import-not-at-top
  from jaxpr_gan import distributed  # pylint: disable=g-import-not-at-top

  distributed.initialize(
    f'localhost:{args.port}', args.num_processes, args.process_id, cpu_collectives='gloo'
  )
  checkpointing.quiet_orbax_logging()
  result = record_run(config(args.data_dir), args.workdir)
  with open(args.out, 'w') as f:
    json.dump(result, f)


if __name__ == '__main__':
  main()
