"""Real-time syncs: a committed cohort change starts a run, coalesced."""

import pytest
import requests

from cohorts.membership import Identity, apply_changes
from syncs.models import Sync, SyncRun
from syncs.scheduling.realtime import start_follow_up
from tests.factories import make_cohort, make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


@pytest.fixture
def cohort():
    return make_cohort(name="Live")


def change(cohort, capture, *values):
    with capture(execute=True):
        apply_changes(cohort.pk, add=[Identity("external_id", v) for v in values])


def test_a_change_starts_a_run_that_updates_the_destination(
    cohort, connection, sandbox, django_capture_on_commit_callbacks
):
    sync = make_sync(cohort=cohort, connection=connection, cadence="realtime")
    change(cohort, django_capture_on_commit_callbacks, "u1")
    run = SyncRun.objects.get(sync=sync)
    assert run.trigger == SyncRun.Trigger.REALTIME
    run_jobs()
    run.refresh_from_db()
    assert (run.status, run.added) == (SyncRun.Status.SUCCEEDED, 1)
    profile = requests.get(f"{sandbox.url}/_sandbox/braze/profiles/external_id:u1", timeout=5)
    assert "Live" in profile.json()["attributes"]["cohortsync_cohorts"]


def test_changes_while_a_run_is_queued_coalesce_into_it(cohort, django_capture_on_commit_callbacks):
    sync = make_sync(cohort=cohort, cadence="realtime")
    for value in ("a", "b", "c"):
        change(cohort, django_capture_on_commit_callbacks, value)
    assert SyncRun.objects.filter(sync=sync).count() == 1


def test_a_change_during_a_run_asks_for_one_follow_up(cohort, django_capture_on_commit_callbacks):
    sync = make_sync(cohort=cohort, cadence="realtime")
    change(cohort, django_capture_on_commit_callbacks, "a")
    SyncRun.objects.filter(sync=sync).update(status=SyncRun.Status.RUNNING)
    change(cohort, django_capture_on_commit_callbacks, "b")
    change(cohort, django_capture_on_commit_callbacks, "c")
    sync.refresh_from_db()
    assert sync.follow_up_requested
    SyncRun.objects.filter(sync=sync).update(status=SyncRun.Status.SUCCEEDED)
    start_follow_up(sync.pk)
    start_follow_up(sync.pk)
    assert SyncRun.objects.filter(sync=sync, status=SyncRun.Status.QUEUED).count() == 1
    sync.refresh_from_db()
    assert not sync.follow_up_requested


def test_a_change_costs_no_run_for_syncs_that_are_not_real_time(
    cohort, django_capture_on_commit_callbacks
):
    make_sync(cohort=cohort)
    paused = make_sync(cohort=cohort, cadence="realtime")
    Sync.objects.filter(pk=paused.pk).update(status=Sync.Status.PAUSED)
    change(cohort, django_capture_on_commit_callbacks, "a")
    assert SyncRun.objects.count() == 0
