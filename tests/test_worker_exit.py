"""A grain worker does not outlive its training process: killed with SIGKILL (as by the OOM
killer), the process leaves no worker, and no worker's memory, behind."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image

from tests import conftest

_SCRIPT = """
import sys, time
from absl import flags
flags.FLAGS.mark_as_parsed()
import ml_collections
from input_pipeline import folders, pipeline
data = dict(seed=0, image_size=16, random_flip=False, num_workers=1)
config = ml_collections.ConfigDict({'batch_size': 2, 'data': data})
it = iter(pipeline.create_train_dataset(config, folders.ImageFolderSource(sys.argv[1])))
next(it)
print('reading', flush=True)
time.sleep(600)
"""


def _children(pid: int) -> list[int]:
  found = []
  for name in os.listdir('/proc'):
    try:
      with open(f'/proc/{name}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
      continue
    if name.isdigit() and int(fields[1]) == pid:
      found.append(int(name))
  return found


def _alive(pid: int) -> bool:
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except OSError:
    return False


def test_a_sigkilled_process_leaves_no_grain_worker(tmp_path):
  rng = np.random.default_rng(0)
  for c in ('a', 'b'):
    os.makedirs(tmp_path / c)
    for k in range(3):
      Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
        tmp_path / c / f'{k}.png'
      )
  proc = subprocess.Popen(
    [sys.executable, '-c', _SCRIPT, str(tmp_path)],
    cwd=conftest.ROOT,
    env=conftest.subprocess_env(1),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  hung = threading.Timer(120, proc.kill)  # a start that hangs fails the test, not blocks it
  hung.start()
  try:
    assert proc.stdout.readline().strip() == 'reading', proc.stderr.read()[-3000:]
    children = _children(proc.pid)
    assert children  # the grain worker (and multiprocessing's resource tracker)
  finally:
    hung.cancel()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
  deadline = time.time() + 20
  while any(map(_alive, children)) and time.time() < deadline:
    time.sleep(0.2)
  left = [p for p in children if _alive(p)]
  for p in left:  # not to leave them to the next tests
    os.kill(p, signal.SIGKILL)
  assert not left
