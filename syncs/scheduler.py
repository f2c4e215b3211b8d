"""Scheduled work, run every minute by the one rqcron process: start the syncs that are due, and
rescue the runs whose worker died."""

import logging
from datetime import datetime, timedelta

import django_rq
from django.db import transaction
from django.utils import timezone
from rq.job import Job

from syncs import dispatch
from syncs.jobs import enqueue_run
from syncs.models import SyncRun
from syncs.run_events import Kind, record_event
from syncs.run_outcome import finish_run

logger = logging.getLogger(__name__)

DISPATCH_BATCH = 1000
STALE_HEARTBEAT = timedelta(seconds=90)
LOST_JOB_AFTER = timedelta(minutes=5)
MAX_INTERRUPTIONS = 3


def dispatch_due_syncs(*, now: datetime | None = None) -> int:
    """Start a run for every active sync whose next_run_at has come; returns how many started.

    Set-based (syncs/dispatch.py): the due slots are claimed, their runs and QUEUED events
    created in one transaction, then the jobs queued through one Redis pipeline once it has
    committed, so a worker always finds its run. Each slot starts once even with a second
    dispatcher (or a retry of this job); a sync with an invalid cadence is reported on its row
    and taken out of the schedule, and never stops the others; a sync whose run is still
    queued or running gets no second one.
    """
    now = now or timezone.now()
    with transaction.atomic():
        claimed = dispatch.claim_due_slots(now=now, limit=DISPATCH_BATCH)
        runs = dispatch.create_scheduled_runs(claimed)
    if runs is None:  # someone started one of these syncs meanwhile: start_run sorts it out
        return dispatch.start_runs_one_by_one(claimed)
    dispatch.queue_runs(runs)
    return len(runs)


def reap_stuck_runs(*, now: datetime | None = None) -> int:
    """Resume runs whose worker stopped beating (or fail them after three interruptions), and
    re-queue queued runs whose job Redis no longer has. Returns how many runs it touched."""
    now = now or timezone.now()
    touched = 0
    stale = SyncRun.objects.filter(
        status=SyncRun.Status.RUNNING, heartbeat_at__lt=now - STALE_HEARTBEAT
    )
    for run in stale:
        # Resumed up to three times; the run whose worker dies a fourth time fails.
        if run.interruptions >= MAX_INTERRUPTIONS:
            record_event(run.pk, Kind.INTERRUPTED, "No heartbeat: the worker stopped again.")
            finish_run(
                run,
                SyncRun.Status.FAILED,
                f"The worker stopped during this run {run.interruptions + 1} times "
                f"(resumed {run.interruptions}); giving up.",
            )
            touched += 1
            continue
        with transaction.atomic():
            # Compare-and-set on the heartbeat: a worker that beats meanwhile keeps its run.
            resumed = SyncRun.objects.filter(
                pk=run.pk, status=SyncRun.Status.RUNNING, heartbeat_at=run.heartbeat_at
            ).update(status=SyncRun.Status.QUEUED, interruptions=run.interruptions + 1)
            if resumed:
                record_event(
                    run.pk,
                    Kind.INTERRUPTED,
                    f"No heartbeat since {run.heartbeat_at:%H:%M:%S}: the worker stopped. "
                    f"Re-queued from the last checkpoint ({run.interruptions + 1} of "
                    f"{MAX_INTERRUPTIONS}).",
                )
        if resumed:
            enqueue_run(run.pk, attempt=run.interruptions + 1)
            touched += 1
    lost = SyncRun.objects.filter(status=SyncRun.Status.QUEUED, queued_at__lt=now - LOST_JOB_AFTER)
    redis = django_rq.get_connection("default")
    for run in lost:
        if not Job.exists(f"sync-run-{run.pk}-{run.interruptions}", connection=redis):
            enqueue_run(run.pk, attempt=run.interruptions)
            touched += 1
    return touched
