"""train.py that SIGKILLs itself in the middle of an asynchronous checkpoint save.

  python tests/resilience_worker.py --kill_during_save=6 --config configs/stargan.py:tiny \
      --workdir DIR [--config.x=y ...]

Runs train.py's `main` with the same flags. orbax's commit of step --kill_during_save (the rename
of `checkpoints/<step>.orbax-checkpoint-tmp` to `checkpoints/<step>`) is held back, so the save
can't finish; as soon as `Checkpointer.save` of that step has returned and the temporary
directory exists, while the background writes may still be running, the process kills itself
with SIGKILL: no handler, no `finally`, no flush runs. Used by tests/test_resilience.py.
"""

import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
from orbax.checkpoint._src.path import atomicity  # pylint: disable=g-import-not-at-top

from jaxpr_gan import checkpointing  # pylint: disable=g-import-not-at-top
import train  # pylint: disable=g-import-not-at-top  # defines --config and --workdir

_KILL_DURING_SAVE = flags.DEFINE_integer(
  'kill_during_save', None, 'SIGKILL this process during the asynchronous save of this step.'
)
flags.mark_flag_as_required('kill_during_save')

# Exit statuses that tell the test why no kill happened.
HOOK_MISSED = 3  # the save of the step was never started: the hooks no longer fit the code
COMMIT_TIMEOUT = 4  # the commit waited for the kill for too long


def _install_hooks(step: int) -> None:
  is_target = lambda path: path.name == str(step) and path.parent.name == 'checkpoints'

  finalize = atomicity.AtomicRenameTemporaryPath.finalize

  async def held_finalize(self):
    if is_target(self.get_final()):
      await asyncio.sleep(120)  # the main thread kills the process long before
      os._exit(COMMIT_TIMEOUT)  # pylint: disable=protected-access
    return await finalize(self)

  atomicity.AtomicRenameTemporaryPath.finalize = held_finalize

  save = checkpointing.Checkpointer.save

  def save_then_kill(self, s, *args, **kwargs):
    save(self, s, *args, **kwargs)
    if s != step:
      return
    tmp = os.path.join(
      os.path.abspath(flags.FLAGS.workdir), 'checkpoints', f'{step}.orbax-checkpoint-tmp'
    )
    deadline = time.monotonic() + 60
    while not os.path.isdir(tmp) and time.monotonic() < deadline:
      time.sleep(0.001)
    print(f'resilience_worker: SIGKILL during the save of step {step}', file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

  checkpointing.Checkpointer.save = save_then_kill


def main(argv):
  _install_hooks(_KILL_DURING_SAVE.value)
  train.main(argv)
  sys.exit(HOOK_MISSED)


if __name__ == '__main__':
  app.run(main)
