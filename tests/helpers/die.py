"""A Hydra callback for crash tests: the process SIGKILLs itself as job ``at`` starts.

    +hydra.callbacks.die._target_=tests.helpers.die.DieAtJob +hydra.callbacks.die.at=2

The kill lands at a fixed point of the sweep (jobs 0 .. at-1 done and told, job ``at`` asked
and left running), whatever the machine's load: no test polls for the moment to kill.
"""
from __future__ import annotations

import os
import signal
from typing import Any

from hydra.experimental.callback import Callback


class DieAtJob(Callback):
    def __init__(self, at: int) -> None:
        self.at = int(at)

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        if int(config.hydra.job.num) == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
