"""The RQ worker class every cohortsync worker runs (settings.RQ["WORKER_CLASS"]).

RQ's own warm shutdown waits for the running job to end, and its work horse dies at once on
SIGTERM; a sync run lasts up to hours, so a stop became a killed run. Here a stop request
(SIGTERM or Ctrl+C to the worker, or SIGTERM to the whole process group or cgroup, the horse
included) reaches the job as core.stopping's flag: a sync run checkpoints what the partner
accepted, hands itself back to the queue and returns, and the worker exits. A second signal
still forces (RQ's cold shutdown kills the horse).
"""

import contextlib
import os
import signal
from types import FrameType

from rq.worker import Worker as RQWorker

from core import stopping


def _request_stop(signum: int, frame: FrameType | None) -> None:
    stopping.request_stop()


class Worker(RQWorker):
    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()
        signal.signal(signal.SIGTERM, _request_stop)

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        # The horse has a process group of its own: a signal to the worker's misses it.
        if self.horse_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.horse_pid, signal.SIGTERM)
