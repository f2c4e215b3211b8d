"""Scheduled work, run every minute by the one rqcron process: start the syncs that are due, and
rescue the runs whose worker died."""

import logging
from datetime import datetime, timedelta

import django_rq
from django.db import transaction
from django.utils import timezone
from rq.job import Job

from syncs import cadence as cadences
from syncs.jobs import enqueue_run
from syncs.models import Sync, SyncRun
from syncs.run_events import Kind, record_event
from syncs.run_outcome import finish_run
from syncs.sync_services import start_run

logger = logging.getLogger(__name__)

DISPATCH_BATCH = 1000
STALE_HEARTBEAT = timedelta(seconds=90)
LOST_JOB_AFTER = timedelta(minutes=5)
MAX_INTERRUPTIONS = 3


def dispatch_due_syncs(*, now: datetime | None = None) -> int:
    """Start a run for every active sync whose next_run_at has come; returns how many started.

    Each slot is claimed with a compare-and-set on next_run_at, so a second dispatcher (or a
    retry of this job) starts nothing twice. A sync with an invalid cadence is reported on its
    row and taken out of the schedule; it never stops the others.
    """
    now = now or timezone.now()
    due = Sync.objects.filter(status=Sync.Status.ACTIVE, next_run_at__lte=now).order_by(
        "next_run_at"
    )[:DISPATCH_BATCH]
    started = 0
    for sync in due:
        slot = sync.next_run_at
        assert slot is not None  # filtered on next_run_at__lte
        try:
            cadence = cadences.parse_cadence(sync.cadence)
            following = cadences.advance_after_missed(
                cadence, due=slot, now=now, spread_key=sync.pk
            )
        except cadences.CadenceError as exc:
            Sync.objects.filter(pk=sync.pk, next_run_at=slot).update(
                next_run_at=None,
                status=Sync.Status.NEEDS_ATTENTION,
                last_run_summary=f"Invalid schedule: {exc}"[:255],
            )
            logger.warning("Sync %s has an invalid cadence: %s", sync.pk, exc)
            continue
        if not Sync.objects.filter(pk=sync.pk, next_run_at=slot).update(next_run_at=following):
            continue  # another dispatcher took this slot
        _, created = start_run(sync=sync, trigger=SyncRun.Trigger.SCHEDULE, actor=None)
        started += int(created)
    return started


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
