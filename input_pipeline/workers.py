"""What grain's worker processes run at start (`mp_prefetch(worker_init_fn=...)`)."""

import os
import threading
import time


def exit_with_parent(worker_index: int, worker_count: int) -> None:
  """The worker exits once the process that started it is gone. Without it a training process
  killed with SIGKILL (or by the OOM killer) leaves its workers, and their memory, behind."""
  del worker_index, worker_count
  parent = os.getppid()

  def watch():
    while os.getppid() == parent:
      time.sleep(1.0)
    os._exit(0)

  threading.Thread(target=watch, name='exit_with_parent', daemon=True).start()
