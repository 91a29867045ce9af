"""Multi-process data parallelism: 2 processes x 4 CPU devices (gloo collectives, coordinator on
localhost) train as 1 process x 8 devices does on the same data and seed (tests/test_training.py
checks 1 device against 8), their one workdir and their image folder in a bucket (gs://, the
local test server of tests/storage_servers.py), as on a TPU pod slice without a shared file
system.

The two processes run `python -m tests.multihost_worker` while this process runs the reference
(on a local disk); the run is 3 iterations of batch 8 on a folder of 24 faces, one epoch.
"""

import functools
import json
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxpr_gan import checkpointing
from jaxpr_gan import orbax_storage
from jaxpr_gan import registry
from jaxpr_gan import storage
from jaxpr_gan.evaluation import restore
from jaxpr_gan.training import state as state_lib
from jaxpr_gan.training import steps as steps_lib
from tests import conftest
from tests import multihost_worker as worker

pytest_plugins = ('tests.storage_servers',)
NUM_PROCESSES, LOCAL_DEVICES, NUM_FACES = 2, 4, 24
TIMEOUT_S = 600


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('faces'))
  worker.write_faces(path, NUM_FACES)
  return path


@pytest.fixture(scope='module')
def launched(tmp_path_factory, data_dir, storage_servers):
  """Starts the two processes; the reference below runs while they compile."""
  root = tmp_path_factory.mktemp('multihost')
  bucket = f'{storage_servers["gs"]}/multihost-{root.name}'
  workdir, faces = f'{bucket}/run', f'{bucket}/faces'
  storage.put_folder(data_dir, faces)  # each process reads its share of the faces from there
  port, env = _free_port(), conftest.subprocess_env(LOCAL_DEVICES)  # with the servers' settings
  procs = []
  for i in range(NUM_PROCESSES):
    with open(root / f'process_{i}.log', 'w') as log:
      procs.append(
        subprocess.Popen(
          [
            sys.executable,
            '-m',
            'tests.multihost_worker',
            '--process_id',
            str(i),
            '--num_processes',
            str(NUM_PROCESSES),
            '--port',
            str(port),
            '--data_dir',
            faces,
            '--workdir',
            workdir,
            '--out',
            str(root / f'process_{i}.json'),
          ],
          cwd=worker.REPO,
          env=env,
          stdout=log,
          stderr=subprocess.STDOUT,
        )
      )
  yield root, procs, time.monotonic(), workdir
  for p in procs:  # only if a test failed before they finished
    if p.poll() is None:
      p.kill()
      p.wait()


@pytest.fixture(scope='module')
def reference(launched, data_dir, tmp_path_factory):
  """The same run in this process, on 8 devices."""
  del launched  # started first
  workdir = str(tmp_path_factory.mktemp('1x8'))
  run = worker.record_run(worker.config(data_dir), workdir, mesh=steps_lib.make_mesh())
  run['workdir'] = workdir
  return run


def _log_tails(root) -> str:
  tails = []
  for i in range(NUM_PROCESSES):
    with open(root / f'process_{i}.log') as f:
      tails.append(f'--- process {i}:\n' + ''.join(f.readlines()[-150:]))
  return '\n'.join(tails)


@pytest.fixture(scope='module')
def multihost(launched, reference):
  """-> (shared workdir, [what process i saw]) once both processes are done."""
  del reference  # wait for it first: both share the two CPU cores
  root, procs, started, workdir = launched
  while any(p.poll() is None for p in procs):
    failed = [p for p in procs if p.poll() not in (None, 0)]
    if failed or time.monotonic() - started > TIMEOUT_S:
      for p in procs:  # a process whose peer died waits on its collectives for ever
        if p.poll() is None:
          p.send_signal(signal.SIGUSR1)  # its threads' stacks, into its log
      time.sleep(2)
      for p in procs:
        if p.poll() is None:
          p.kill()
        p.wait()
      pytest.fail(f'multi-process run failed or timed out:\n{_log_tails(root)}')
    time.sleep(0.2)
  if any(p.returncode for p in procs):
    pytest.fail(f'multi-process run failed:\n{_log_tails(root)}')
  results = []
  for i in range(NUM_PROCESSES):
    with open(root / f'process_{i}.json') as f:
      results.append(json.load(f))
  return workdir, results


def _state_template():
  """The train state's shapes, replicated on this process's devices (the run's may be others)."""
  config = worker.config('')
  replicated = jax.sharding.NamedSharding(steps_lib.make_mesh(), jax.sharding.PartitionSpec())
  abstract = jax.eval_shape(
    functools.partial(state_lib.init_state, registry.build(config, 3), config)
  )
  return jax.tree.map(
    lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated), abstract
  )


def _final_params(workdir):
  step = worker.config('').num_train_steps
  state, _ = checkpointing.Checkpointer(workdir).restore(
    step, _state_template(), with_data_iter=False
  )
  return jax.device_get(state.params)


def test_each_process_drives_its_4_of_the_8_devices(multihost):
  _, results = multihost
  for i, r in enumerate(results):
    assert (r['process_index'], r['process_count']) == (i, NUM_PROCESSES)
    assert (r['local_device_count'], r['device_count']) == (LOCAL_DEVICES, 8)
  # Metrics go to TensorBoard from the chief only; the other process logs them.
  assert [r['writers'] for r in results] == [['tensorboard'], ['log only']]


def test_losses_agree_with_one_process_of_8_devices(multihost, reference):
  _, results = multihost
  want = reference['losses']
  assert sorted(want, key=int) == ['1', '2', '3']
  assert {'D/loss', 'D/gp', 'D/cls', 'G/loss', 'G/rec'} <= set(want['3'])
  assert results[0]['losses'] == results[1]['losses']  # replicated values, fetched by each
  got = results[0]['losses']
  assert got.keys() == want.keys()
  for step in want:
    assert got[step].keys() == want[step].keys()
    for k in want[step]:
      np.testing.assert_allclose(
        got[step][k], want[step][k], rtol=1e-4, atol=1e-6, err_msg=f'step {step}, {k}'
      )


def test_final_parameters_agree(multihost, reference):
  workdir, _ = multihost
  want = _final_params(reference['workdir'])
  config = worker.config('')
  lr = max(config.optim.d_lr, config.optim.g_lr)
  got = _final_params(workdir)
  assert jax.tree.structure(got) == jax.tree.structure(want)
  diff = np.concatenate(
    [np.abs(np.ravel(x) - np.ravel(y)) for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want))]
  )
  # Adam moves a weight by about lr per update whatever the gradient's size, so reduction-order
  # noise in a near-zero gradient component can send it up to 2 lr the other way per update
  # (see test_training). A handful of weights do (about 0.05% here); the others agree to 1e-6.
  assert diff.max() <= 2 * lr * config.num_train_steps
  assert np.mean(diff > 1e-6) < 0.005, np.mean(diff > 1e-6)
  # eval.py on one machine reads the checkpoint of the 2 processes.
  run = restore.restore(workdir)
  g_params, class_names, step = run.g_params, run.class_names, run.step
  assert (class_names, step) == (['happy', 'neutral', 'sad'], 3)
  for x, y in zip(jax.tree.leaves(g_params), jax.tree.leaves(_final_params(workdir)['g'])):
    np.testing.assert_array_equal(x, y)


def test_processes_read_disjoint_shards_that_cover_the_data(multihost, reference):
  _, results = multihost
  per_process = [[b['index'] for b in r['batches']] for r in results]
  read = [{i for batch in batches for i in batch} for batches in per_process]
  assert not read[0] & read[1]
  assert sorted(i for batches in per_process for batch in batches for i in batch) == list(
    range(NUM_FACES)
  )  # 3 batches of 8 are one epoch: every face exactly once
  # Each process reads its half of every global batch that the single-process run reads.
  assert len(reference['batches']) == len(per_process[0]) == 3
  for step, batch in enumerate(reference['batches']):
    parts = [r['batches'][step] for r in results]
    assert batch['index'] == parts[0]['index'] + parts[1]['index'], step
    assert batch['label'] == parts[0]['label'] + parts[1]['label'], step


def test_outputs_are_written_once(multihost):
  workdir, _ = multihost
  names = storage.listdir(workdir)
  assert len([f for f in names if f.startswith('events.out.tfevents')]) == 1
  assert storage.listdir(storage.join(workdir, 'samples')) == ['step_0000003.png']
  assert json.loads(storage.read_text(storage.join(workdir, 'run.json')))['class_names'] == [
    'happy',
    'neutral',
    'sad',
  ]
  assert not storage.exists(storage.join(workdir, '.lock'))  # released by process 0
  ckpt = checkpointing.Checkpointer(workdir)
  assert ckpt.all_steps() == [3]
  # The data-iterator position of each process is in the checkpoint, and a run with another
  # number of processes is told to resume with 2.
  raw = ocp.CheckpointManager(
    storage.join(workdir, 'checkpoints'),
    item_names=('data_iter',),
    options=ocp.CheckpointManagerOptions(
      read_only=True, atomicity_options=orbax_storage.atomicity_options(workdir)
    ),
  )
  saved = raw.restore(3, args=ocp.args.Composite(data_iter=ocp.args.JsonRestore()))['data_iter']
  assert saved['process_count'] == NUM_PROCESSES and len(saved['process_states']) == 2
  with pytest.raises(ValueError, match='written by 2 processes'):
    ckpt.restore(3, _state_template())
