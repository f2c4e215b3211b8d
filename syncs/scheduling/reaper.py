"""Rescue the runs whose worker died, run every 30 s by the one rqcron process: a run whose
heartbeat went stale is resumed from its last checkpoint (or failed after three
interruptions), and a queued run whose job Redis lost is queued again."""

from datetime import datetime, timedelta

import django_rq
from django.db import transaction
from django.utils import timezone
from rq.job import Job

from syncs.engine.events import Kind, record_event
from syncs.engine.outcome import finish_run
from syncs.models import SyncRun
from syncs.queue import RUNS_QUEUE, enqueue_run, run_job_id

STALE_HEARTBEAT = timedelta(seconds=90)
# A queued run whose job Redis does not have (Redis was unreachable, or restarted empty) is
# queued again after this: the grace covers the moment between a run's commit and its enqueue.
LOST_JOB_AFTER = timedelta(minutes=1)
MAX_INTERRUPTIONS = 3


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
    redis = django_rq.get_connection(RUNS_QUEUE)
    for run in lost:
        if not Job.exists(run_job_id(run.pk, run.interruptions), connection=redis):
            enqueue_run(run.pk, attempt=run.interruptions)
            touched += 1
    return touched
