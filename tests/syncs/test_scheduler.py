"""dispatch_due_syncs and reap_stuck_runs, on a controlled clock with a real Redis."""

from datetime import UTC, datetime, timedelta

import django_rq
import pytest
from django.utils import timezone
from rq.job import Job

from connections.sandbox import DEMO_BRAZE_KEY
from syncs.models import Sync, SyncRun, SyncRunEvent
from syncs.queue import enqueue_new_runs, enqueue_run
from syncs.scheduling import dispatch
from syncs.scheduling.dispatch import dispatch_due_syncs
from syncs.scheduling.reaper import reap_stuck_runs
from syncs.services import create_sync, start_run, waits_for_queue
from tests.base import make_connection
from tests.factories import make_cohort, make_sync
from tests.jobs import run_jobs
from tests.queues import queues_at

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def cohort():
    return make_cohort(members=["u1"])


def hourly_sync(cohort, connection, name="hourly", next_run_at=NOON):
    cadence = {"kind": "hourly", "minute": 0}
    return make_sync(
        name=name, cohort=cohort, connection=connection, cadence=cadence, next_run_at=next_run_at
    )


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


def due_syncs(cohort, count, *, connection=None):
    connection = connection or make_connection()
    return [hourly_sync(cohort, connection, name=f"due {n}") for n in range(count)]


def queued_job_ids():
    return set(django_rq.get_queue("runs").job_ids)


def test_one_tick_starts_every_due_sync_with_its_event_and_job(cohort):
    syncs = due_syncs(cohort, 5)
    later = hourly_sync(cohort, syncs[0].connection, name="later", next_run_at=NOON + HOUR)
    assert dispatch_due_syncs(now=NOON + timedelta(seconds=5)) == 5
    runs = SyncRun.objects.filter(sync__in=syncs)
    assert sorted(run.sync_id for run in runs) == sorted(sync.pk for sync in syncs)
    assert {(run.trigger, run.status) for run in runs} == {
        (SyncRun.Trigger.SCHEDULE, SyncRun.Status.QUEUED)
    }
    events = SyncRunEvent.objects.filter(run__in=runs)
    assert sorted((event.run_id, event.kind, event.message) for event in events) == sorted(
        (run.pk, SyncRunEvent.Kind.QUEUED, "Schedule.") for run in runs
    )
    assert queued_job_ids() == {f"sync-run-{run.pk}-0" for run in runs}
    assert set(
        Sync.objects.filter(pk__in=[s.pk for s in syncs]).values_list("next_run_at", flat=True)
    ) == {NOON + HOUR}
    assert not SyncRun.objects.filter(sync=later).exists()
    assert dispatch_due_syncs(now=NOON + timedelta(seconds=6)) == 0


def test_invalid_cadences_among_many_are_each_reported_and_the_rest_start(cohort):
    syncs = due_syncs(cohort, 5)
    bad_hour, bad_zone = syncs[1], syncs[3]
    Sync.objects.filter(pk=bad_hour.pk).update(cadence={"kind": "daily", "time_of_day": "25:99"})
    Sync.objects.filter(pk=bad_zone.pk).update(
        cadence={"kind": "daily", "time_of_day": "09:00", "timezone": "Mars/Olympus"}
    )
    assert dispatch_due_syncs(now=NOON + timedelta(seconds=5)) == 3
    for broken, words in ((bad_hour, "'25:99' is not HH:MM"), (bad_zone, "'Mars/Olympus'")):
        broken.refresh_from_db()
        assert (broken.status, broken.next_run_at) == (Sync.Status.NEEDS_ATTENTION, None)
        assert broken.last_run_summary.startswith("Invalid schedule: ")
        assert words in broken.last_run_summary
        assert not SyncRun.objects.filter(sync=broken).exists()
    healthy = [syncs[0], syncs[2], syncs[4]]
    assert SyncRun.objects.filter(sync__in=healthy).count() == 3


def test_a_due_sync_with_an_active_run_is_coalesced_while_the_others_start(cohort):
    syncs = due_syncs(cohort, 3)
    running = SyncRun.objects.create(
        sync=syncs[1], trigger=SyncRun.Trigger.MANUAL, status=SyncRun.Status.RUNNING
    )
    assert dispatch_due_syncs(now=NOON + timedelta(seconds=5)) == 2
    assert list(SyncRun.objects.filter(sync=syncs[1])) == [running]
    assert not SyncRunEvent.objects.filter(run=running).exists()
    syncs[1].refresh_from_db()
    assert syncs[1].next_run_at == NOON + HOUR  # the slot is taken all the same
    new_runs = SyncRun.objects.exclude(pk=running.pk)
    assert queued_job_ids() == {f"sync-run-{run.pk}-0" for run in new_runs}


def test_a_run_started_meanwhile_makes_the_tick_start_its_runs_one_by_one(cohort, monkeypatch):
    syncs = due_syncs(cohort, 3)
    # The run appears after the tick looked for active runs: the unique index refuses the batch.
    queued = SyncRun.objects.create(sync=syncs[0], trigger=SyncRun.Trigger.API)
    monkeypatch.setattr(dispatch, "syncs_with_an_active_run", lambda sync_ids: set())
    assert dispatch_due_syncs(now=NOON + timedelta(seconds=5)) == 2
    assert list(SyncRun.objects.filter(sync=syncs[0])) == [queued]
    for sync in syncs:
        assert SyncRun.objects.filter(sync=sync, status__in=SyncRun.ACTIVE).count() == 1
    assert len(queued_job_ids()) == 2
    assert dispatch_due_syncs(now=NOON + timedelta(seconds=6)) == 0


def test_runs_the_queue_did_not_take_wait_and_the_reaper_queues_them_once_it_is_back(
    cohort, settings
):
    syncs = due_syncs(cohort, 3)
    clicked = hourly_sync(cohort, syncs[0].connection, name="clicked", next_run_at=None)
    reachable = settings.RQ_QUEUES
    settings.RQ_QUEUES = queues_at("redis://127.0.0.1:1/0", timeout=5)
    assert dispatch_due_syncs(now=NOON + timedelta(seconds=5)) == 3
    start_run(sync=clicked, trigger=SyncRun.Trigger.MANUAL, actor=None)
    waiting = SyncRun.objects.filter(sync__in=[*syncs, clicked])
    assert {run.status for run in waiting} == {SyncRun.Status.QUEUED}
    assert all(waits_for_queue(run) for run in waiting)
    for sync in syncs:
        sync.refresh_from_db()
        assert sync.next_run_at == NOON + HOUR  # each slot started once
    # Redis is back: the reaper queues every waiting run's job.
    settings.RQ_QUEUES = reachable
    assert reap_stuck_runs(now=timezone.now() + timedelta(minutes=2)) == 4
    assert queued_job_ids() == {f"sync-run-{run.pk}-0" for run in waiting}


def test_a_tick_makes_as_many_queries_for_five_due_syncs_as_for_two(cohort):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    connection_ = make_connection()
    counts = []
    for count, now in ((2, NOON + timedelta(seconds=5)), (5, NOON + HOUR + timedelta(seconds=5))):
        SyncRun.objects.update(status=SyncRun.Status.SUCCEEDED)
        Sync.objects.update(next_run_at=None)
        due_syncs(cohort, count, connection=connection_)
        Sync.objects.filter(next_run_at=NOON).update(next_run_at=now - timedelta(seconds=5))
        with CaptureQueriesContext(connection) as queries:
            assert dispatch_due_syncs(now=now) == count
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_batch_jobs_are_the_jobs_enqueue_run_makes_and_stay_unique(cohort):
    sync = hourly_sync(cohort, make_connection())
    single, batched = (
        SyncRun.objects.create(sync=sync, trigger=SyncRun.Trigger.MANUAL, status=status)
        for status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.QUEUED)
    )
    redis = django_rq.get_connection("runs")
    enqueue_run(single.pk)
    assert enqueue_new_runs([batched.pk]) == []
    jobs = [Job.fetch(f"sync-run-{run.pk}-0", connection=redis) for run in (single, batched)]

    def shape(job):
        return (
            job.func_name,
            job.timeout,
            job.result_ttl,
            job.failure_ttl,
            job.ttl,
            job.origin,
            job.get_status(),
            job.kwargs,
        )

    assert shape(jobs[0]) == shape(jobs[1])
    assert [job.args for job in jobs] == [(single.pk,), (batched.pk,)]
    stored = [set(redis.hkeys(job.key)) for job in jobs]
    assert stored[0] == stored[1]
    # A job id that exists is refused, as enqueue_run's unique=True does: not queued twice.
    assert enqueue_new_runs([batched.pk]) == [batched.pk]
    assert django_rq.get_queue("runs").job_ids == [job.id for job in jobs]


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
    assert Job.exists(f"sync-run-{run.pk}-1", connection=django_rq.get_connection("runs"))


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
    redis = django_rq.get_connection("runs")
    assert not Job.exists(f"sync-run-{run.pk}-0", connection=redis)
    assert reap_stuck_runs(now=NOON) == 1
    assert Job.exists(f"sync-run-{run.pk}-0", connection=redis)
    assert reap_stuck_runs(now=NOON) == 0
