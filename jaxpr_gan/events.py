"""TensorBoard event files (clu metric writers) of a local, gs:// or s3:// folder.

clu's writers go through tf.io.gfile, which has no s3:// and cannot be pointed at a GCS test
server. For a remote folder they therefore write into a local folder of this host,
`~/.cache/jaxpr_gan/tensorboard/<hash of the URL>` (CACHE_ENV overrides the root), which is
mirrored to the remote folder (storage.put_folder: the files that grew) by `sync`, called at
every log and checkpoint step, and by `close`. A run resumed on the same host mirrors what a
killed run wrote after its last sync too; on another host that part is lost. Files of the local
folder that the remote one lacks (an earlier run of the same URL, since deleted) are removed
when a writer opens, so they are not mirrored into a new run. A local folder is written
directly, as before.
"""

import hashlib
import os
from typing import Any

from absl import logging
from clu import metric_writers

from jaxpr_gan import storage

CACHE_ENV = 'JAXPR_GAN_TENSORBOARD_CACHE'


def local_folder(logdir: str) -> str:
  """Where the event files of `logdir` are written on this host: `logdir` itself if local."""
  if not storage.is_remote(logdir):
    return logdir
  root = os.environ.get(CACHE_ENV) or os.path.join('~', '.cache', 'jaxpr_gan', 'tensorboard')
  name = hashlib.sha256(str(logdir).rstrip('/').encode()).hexdigest()[:16]
  return os.path.join(os.path.expanduser(root), name)


class MirroredWriter(metric_writers.MetricWriter):
  """A clu writer into `local_folder(logdir)` whose files `sync` copies to `logdir`."""

  def __init__(self, logdir: str, writer: metric_writers.MetricWriter, local: str):
    self.logdir, self._writer, self._local = logdir, writer, local

  def write_summaries(self, step, values, metadata=None):
    self._writer.write_summaries(step, values, metadata)

  def write_scalars(self, step, scalars):
    self._writer.write_scalars(step, scalars)

  def write_images(self, step, images):
    self._writer.write_images(step, images)

  def write_videos(self, step, videos):
    self._writer.write_videos(step, videos)

  def write_audios(self, step, audios, *, sample_rate):
    self._writer.write_audios(step, audios, sample_rate=sample_rate)

  def write_texts(self, step, texts):
    self._writer.write_texts(step, texts)

  def write_histograms(self, step, arrays, num_buckets=None):
    self._writer.write_histograms(step, arrays, num_buckets)

  def write_hparams(self, hparams):
    self._writer.write_hparams(hparams)

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()
    self.sync()

  def sync(self) -> None:
    """Flushes the events and copies the files that changed to the remote folder. A failed
    upload is a warning: the next sync copies them again."""
    self._writer.flush()
    try:
      storage.put_folder(self._local, self.logdir)
    except FileNotFoundError:  # nothing written yet
      pass
    except Exception as e:  # noqa: BLE001  (a network error must not end a run)
      logging.warning('Could not mirror the TensorBoard events to %s: %s', self.logdir, e)


def create_writer(logdir: str, **kwargs) -> Any:
  """clu's `create_default_writer(logdir, **kwargs)`, for a gs:// or s3:// `logdir` too (a
  MirroredWriter then, unless just_logging)."""
  if not storage.is_remote(logdir) or kwargs.get('just_logging'):
    return metric_writers.create_default_writer(logdir, **kwargs)
  local = local_folder(logdir)
  os.makedirs(local, exist_ok=True)
  remote = set(storage.listdir(logdir)) if storage.isdir(logdir) else set()
  for name in os.listdir(local):
    if name not in remote and os.path.isfile(os.path.join(local, name)):
      os.remove(os.path.join(local, name))
  return MirroredWriter(logdir, metric_writers.create_default_writer(local, **kwargs), local)


def sync(writer) -> None:
  """Mirrors a MirroredWriter's files to its remote folder; nothing for other writers."""
  if isinstance(writer, MirroredWriter):
    writer.sync()
