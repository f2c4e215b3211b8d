"""The RQ worker class every cohortsync worker runs (settings.RQ["WORKER_CLASS"]).

RQ's own warm shutdown waits for the running job to end, and its work horse dies at once on
SIGTERM; a sync run lasts up to hours, so a stop became a killed run. Here a stop request
(SIGTERM or Ctrl+C to the worker, or SIGTERM to the whole process group or cgroup, the horse
included) reaches the job as core.stopping's flag: a sync run checkpoints what the partner
accepted, hands itself back to the queue and returns, and the worker exits. A second signal
still forces (RQ's cold shutdown kills the horse).

RQ forks a work horse per job, and the horse imports the job's module: the sync engine and
psycopg cost a horse 120-170 ms of imports (`python -X importtime`), and the egress client's TLS
context 17 ms more, before a run sent anything. The worker loads them once, before its first
fork (`warm_up`), and every horse starts with them.
"""

import contextlib
import os
import signal
from types import FrameType
from typing import Any

from django.utils.module_loading import autodiscover_modules
from rq.worker import Worker as RQWorker

from core import stopping
from core.egress_client import ca_bundle, tls_context


def _request_stop(signum: int, frame: FrameType | None) -> None:
    stopping.request_stop()


def warm_up() -> None:
    """Load what every job's work horse would otherwise load again: each app's `jobs` module
    (what RQ imports by a job's dotted name, and everything it imports: the engine, the
    database driver), and the egress client's TLS context."""
    autodiscover_modules("jobs")
    tls_context(ca_bundle())


class Worker(RQWorker):
    def work(self, *args: Any, **kwargs: Any) -> bool:
        warm_up()
        return super().work(*args, **kwargs)

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()
        signal.signal(signal.SIGTERM, _request_stop)

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        # The horse has a process group of its own: a signal to the worker's misses it.
        if self.horse_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.horse_pid, signal.SIGTERM)
