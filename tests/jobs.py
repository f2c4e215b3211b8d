"""Run queued RQ jobs inside the test process (use with the rq_redis fixture)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import django_rq
from django.db.models import F

from syncs.engine import checkpoint
from syncs.models import SyncRun

# A dotted path: django-rq annotates worker_class as a Worker subclass, and SimpleWorker is
# only a BaseWorker one.
SIMPLE_WORKER = "rq.worker.SimpleWorker"


def run_jobs(*queue_names: str) -> bool:
    """Drain the queues (both by default: `runs`, then `default`), then return. SimpleWorker,
    never the forking Worker: a forked horse would write to its own copy of the test
    database, and the test would see nothing."""
    worker = django_rq.get_worker(*(queue_names or ("runs", "default")), worker_class=SIMPLE_WORKER)
    return bool(worker.work(burst=True))


@contextmanager
def reaper_takes_the_run_after_its_first_checkpoint(run_id: int) -> Iterator[list[str | None]]:
    """Inside: as if the reaper believed the worker dead after the run's first checkpoint and
    re-queued the run. Yields what each checkpoint returned (None: the run was no longer the
    worker's, nothing written)."""
    real_commit = checkpoint.commit
    written: list[str | None] = []

    def commit(pending: checkpoint.Checkpoint) -> str | None:
        if written:
            SyncRun.objects.filter(pk=run_id).update(
                status=SyncRun.Status.QUEUED, interruptions=F("interruptions") + 1
            )
        written.append(real_commit(pending))
        return written[-1]

    with mock.patch.object(checkpoint, "commit", commit):
        yield written


def run_jobs_and_commit_hooks(capture: Any, *queue_names: str) -> bool:
    """run_jobs, then what the jobs' transactions left for after their commit (the listeners of
    run_finished: a follow-up run, the end of a connection's removal, alerts), as a worker's
    real commits would run them. `capture` is pytest-django's django_capture_on_commit_callbacks.
    """
    with capture(execute=True):
        return run_jobs(*queue_names)
