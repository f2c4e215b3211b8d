"""A run's timeline (SyncRunEvent) and removal history (SyncRemoval), written by the engine as
it goes, and the cleanup run that empties a destination before its connection is deleted."""

from datetime import timedelta

import django_rq
import pytest
import requests
from django.utils import timezone

from cohorts.membership import Identity, apply_changes
from syncs.lifecycle import cancel_run
from syncs.models import SyncedMember, SyncRemoval, SyncRun, SyncRunEvent
from syncs.scheduling.reaper import reap_stuck_runs
from syncs.services import start_run
from tests.factories import make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]
Kind = SyncRunEvent.Kind


def ext(value):
    return Identity("external_id", value)


@pytest.fixture
def sync(cohort, connection):
    return make_sync(cohort=cohort, connection=connection)


def run(sync, trigger=SyncRun.Trigger.MANUAL):
    started, created = start_run(sync=sync, trigger=trigger, actor=None)
    assert created
    run_jobs()
    started.refresh_from_db()
    return started


def kinds(run):
    return list(run.events.values_list("kind", flat=True))


def in_braze(sandbox, value):
    response = requests.get(f"{sandbox.url}/_sandbox/braze/profiles/external_id:{value}", timeout=5)
    if response.status_code == 404:
        return False
    return "Churn risk" in (response.json()["attributes"].get("cohortsync_cohorts") or [])


def test_a_run_records_its_steps_and_each_checkpoint_with_counts(cohort, sync):
    apply_changes(cohort.pk, add=[ext(f"u{n:03d}") for n in range(100)])
    finished = run(sync)
    steps = kinds(finished)
    assert steps[:3] == [Kind.QUEUED, Kind.CLAIMED, Kind.PLANNED]
    assert steps[-1] == Kind.FINISHED
    # Each checkpoint's line: one or two (a group commit), for 75 per request to Braze.
    assert set(steps[3:-1]) == {Kind.BATCH}
    batches = finished.events.filter(kind=Kind.BATCH)
    assert sum(event.details["batches"] for event in batches) == 2
    assert sum(event.details["added"] for event in batches) == finished.added == 100
    assert all(event.details["ms"] >= 0 for event in batches)
    assert finished.events.get(kind=Kind.PLANNED).details == {"adds": 100, "removes": 0}
    assert finished.events.get(kind=Kind.FINISHED).details["status"] == SyncRun.Status.SUCCEEDED


def test_retries_and_throttled_waits_are_on_the_timeline(cohort, sync, sandbox):
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"partner": "braze", "statuses": [503, 429]},
        timeout=5,
    ).raise_for_status()
    apply_changes(cohort.pk, add=[ext("u1")])
    finished = run(sync)
    assert finished.status == SyncRun.Status.SUCCEEDED
    retry = finished.events.get(kind=Kind.RETRY)
    assert retry.details["status"] == 503
    throttled = finished.events.get(kind=Kind.THROTTLED, details__status=429)
    assert throttled.details["seconds"] >= 0
    assert finished.retries == 2


def test_removed_members_are_kept_in_the_removal_history(cohort, sync):
    apply_changes(cohort.pk, add=[ext("stay"), ext("leave")])
    run(sync)
    apply_changes(cohort.pk, remove=[ext("leave")])
    second = run(sync)
    removal = SyncRemoval.objects.get()
    assert (removal.sync_id, removal.run_id, removal.value) == (sync.pk, second.pk, "leave")
    assert not SyncedMember.objects.filter(value="leave").exists()


def test_an_interruption_and_its_resume_are_on_the_timeline(cohort, sync):
    apply_changes(cohort.pk, add=[ext("u1")])
    started, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    # A worker took the job and claimed the run, then died: its heartbeat stops.
    django_rq.get_queue("runs").empty()
    SyncRun.objects.filter(pk=started.pk).update(
        status=SyncRun.Status.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    assert reap_stuck_runs() == 1
    run_jobs()
    started.refresh_from_db()
    assert started.status == SyncRun.Status.SUCCEEDED
    assert kinds(started) == [
        Kind.QUEUED,
        Kind.INTERRUPTED,
        Kind.RESUMED,
        Kind.PLANNED,  # nothing was processed before the worker died: it plans afresh
        Kind.BATCH,
        Kind.FINISHED,
    ]


def test_a_cancel_request_is_on_the_timeline(cohort, sync):
    started, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    SyncRun.objects.filter(pk=started.pk).update(status=SyncRun.Status.RUNNING)
    cancel_run(run=started, actor=None)
    assert kinds(started)[-1] == Kind.CANCEL_REQUESTED


def test_a_cleanup_run_removes_everything_the_sync_put_in_the_destination(cohort, sync, sandbox):
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(120)])
    run(sync)
    assert in_braze(sandbox, "u7")
    cleanup = run(sync, trigger=SyncRun.Trigger.CLEANUP)
    assert cleanup.status == SyncRun.Status.SUCCEEDED
    # Every member is still in the cohort, yet all are removed, and the guard does not hold it.
    assert (cleanup.planned_adds, cleanup.planned_removes, cleanup.removed) == (0, 120, 120)
    assert not SyncedMember.objects.filter(sync=sync).exists()
    assert not in_braze(sandbox, "u7")
    assert SyncRemoval.objects.filter(run=cleanup).count() == 120
