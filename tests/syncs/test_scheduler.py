"""dispatch_due_syncs and reap_stuck_runs, on a controlled clock with a real Redis."""

from datetime import UTC, datetime, timedelta

import django_rq
import pytest
from rq.job import Job

from connections.sandbox import DEMO_BRAZE_KEY
from syncs.membership import Identity, apply_changes
from syncs.models import Cohort, Sync, SyncRun
from syncs.scheduler import dispatch_due_syncs, reap_stuck_runs
from syncs.sync_services import create_sync
from tests.base import make_connection
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def cohort():
    cohort = Cohort.objects.create(name="Churn risk", source=Cohort.Source.MANUAL)
    apply_changes(cohort.pk, add=[Identity("external_id", "u1")])
    return cohort


def hourly_sync(cohort, connection, name="hourly", next_run_at=NOON):
    sync = create_sync(
        name=name,
        cohort=cohort,
        connection=connection,
        identifier_mapping=["external_id"],
        cadence={"kind": "hourly", "minute": 0},
        actor=None,
    )
    Sync.objects.filter(pk=sync.pk).update(next_run_at=next_run_at)
    sync.refresh_from_db()
    return sync


def test_creating_a_scheduled_sync_sets_its_first_run_and_a_once_sync_has_none(cohort):
    from django.utils import timezone

    connection = make_connection()
    hourly = create_sync(
        name="h",
        cohort=cohort,
        connection=connection,
        identifier_mapping=["external_id"],
        cadence={"kind": "hourly", "minute": 7},
        actor=None,
    )
    assert hourly.next_run_at is not None
    assert hourly.next_run_at > timezone.now()
    assert hourly.next_run_at.minute == 7
    once = create_sync(
        name="o",
        cohort=cohort,
        connection=connection,
        identifier_mapping=["external_id"],
        cadence={"kind": "once"},
        actor=None,
    )
    assert once.next_run_at is None


def test_a_due_sync_gets_one_run_and_its_next_slot(cohort, sandbox):
    sync = hourly_sync(cohort, make_connection(endpoint=sandbox.url, secret=DEMO_BRAZE_KEY))
    assert dispatch_due_syncs(now=NOON + timedelta(seconds=5)) == 1
    sync.refresh_from_db()
    assert sync.next_run_at == NOON + timedelta(hours=1)
    run = SyncRun.objects.get(sync=sync)
    assert run.trigger == SyncRun.Trigger.SCHEDULE
    run_jobs()
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED


def test_a_second_dispatcher_starts_nothing_twice(cohort):
    hourly_sync(cohort, make_connection())
    now = NOON + timedelta(seconds=5)
    assert dispatch_due_syncs(now=now) == 1
    assert dispatch_due_syncs(now=now) == 0
    assert SyncRun.objects.count() == 1


def test_missed_slots_are_not_replayed_after_downtime(cohort):
    sync = hourly_sync(cohort, make_connection())
    dispatch_due_syncs(now=NOON + timedelta(hours=5, minutes=30))
    sync.refresh_from_db()
    assert sync.next_run_at == NOON + timedelta(hours=6)
    assert SyncRun.objects.count() == 1


def test_an_invalid_cadence_is_reported_and_never_stops_the_others(cohort):
    connection = make_connection()
    broken = hourly_sync(cohort, connection, name="broken")
    Sync.objects.filter(pk=broken.pk).update(cadence={"kind": "daily", "time_of_day": "25:99"})
    healthy = hourly_sync(
        cohort, connection, name="healthy", next_run_at=NOON + timedelta(seconds=1)
    )
    assert dispatch_due_syncs(now=NOON + timedelta(minutes=1)) == 1
    broken.refresh_from_db()
    assert broken.status == Sync.Status.NEEDS_ATTENTION
    assert broken.next_run_at is None
    assert "Invalid schedule" in broken.last_run_summary
    assert SyncRun.objects.filter(sync=healthy).count() == 1


def test_paused_syncs_are_not_dispatched(cohort):
    sync = hourly_sync(cohort, make_connection())
    Sync.objects.filter(pk=sync.pk).update(status=Sync.Status.PAUSED)
    assert dispatch_due_syncs(now=NOON + timedelta(minutes=1)) == 0


def stuck_run(sync, *, heartbeat, interruptions=0):
    return SyncRun.objects.create(
        sync=sync,
        trigger=SyncRun.Trigger.SCHEDULE,
        status=SyncRun.Status.RUNNING,
        heartbeat_at=heartbeat,
        started_at=heartbeat,
        planned_adds=10,
        added=4,
        interruptions=interruptions,
    )


def test_a_run_whose_worker_died_is_resumed(cohort):
    sync = hourly_sync(cohort, make_connection())
    run = stuck_run(sync, heartbeat=NOON)
    assert reap_stuck_runs(now=NOON + timedelta(seconds=91)) == 1
    run.refresh_from_db()
    assert (run.status, run.interruptions) == (SyncRun.Status.QUEUED, 1)
    assert Job.exists(f"sync-run-{run.pk}-1", connection=django_rq.get_connection("default"))


def test_a_run_with_a_fresh_heartbeat_is_left_alone(cohort):
    sync = hourly_sync(cohort, make_connection())
    run = stuck_run(sync, heartbeat=NOON)
    assert reap_stuck_runs(now=NOON + timedelta(seconds=60)) == 0
    run.refresh_from_db()
    assert run.status == SyncRun.Status.RUNNING


def test_a_run_is_resumed_three_times_and_fails_when_its_worker_dies_a_fourth(cohort):
    sync = hourly_sync(cohort, make_connection())
    run = stuck_run(sync, heartbeat=NOON, interruptions=2)
    reap_stuck_runs(now=NOON + timedelta(minutes=5))
    run.refresh_from_db()
    assert (run.status, run.interruptions) == (SyncRun.Status.QUEUED, 3)
    SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.RUNNING)
    reap_stuck_runs(now=NOON + timedelta(minutes=5))
    run.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert "4 times (resumed 3)" in run.error_summary
    assert run.planned == run.added + run.removed + run.failed + run.skipped


def test_a_queued_run_whose_job_was_lost_is_queued_again(cohort):
    sync = hourly_sync(cohort, make_connection())
    run = SyncRun.objects.create(
        sync=sync, trigger=SyncRun.Trigger.MANUAL, queued_at=NOON - timedelta(minutes=10)
    )
    redis = django_rq.get_connection("default")
    assert not Job.exists(f"sync-run-{run.pk}-0", connection=redis)
    assert reap_stuck_runs(now=NOON) == 1
    assert Job.exists(f"sync-run-{run.pk}-0", connection=redis)
    assert reap_stuck_runs(now=NOON) == 0
