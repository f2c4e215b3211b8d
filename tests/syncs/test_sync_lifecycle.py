"""The sync lifecycle services: pause and resume, cancel, approve or reject a held run, full
resync, delete. Runs that must really happen go through a real RQ worker and the simulator."""

from unittest import mock

import pytest
import requests
from django.core.exceptions import ValidationError

from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort
from connections.models import Connection
from core.models import AuditEntry
from syncs.engine import checkpoint
from syncs.engine.run import UNSETTLED_PER_SLOT
from syncs.engine.sending import BatchSender
from syncs.lifecycle import (
    approve_held_run,
    cancel_run,
    delete_sync,
    full_resync,
    pause_sync,
    reject_held_run,
    resume_sync,
)
from syncs.models import Sync, SyncedMember, SyncRun
from syncs.services import start_run
from tests.factories import make_run, make_simulator_connection, make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]
# The connection's requests in flight where a test counts them.
IN_FLIGHT = 4

Status = SyncRun.Status


def ext(value):
    return Identity("external_id", value)


def run(sync, trigger=SyncRun.Trigger.MANUAL):
    started, created = start_run(sync=sync, trigger=trigger, actor=None)
    assert created
    run_jobs()
    started.refresh_from_db()
    return started


def users_track_requests(sandbox):
    stats = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()["requests"]
    return sum(stats.get("POST /users/track", {}).values())


def cohorts_of(sandbox, external_id):
    response = requests.get(
        f"{sandbox.url}/_sandbox/braze/profiles/external_id:{external_id}", timeout=5
    )
    if response.status_code == 404:
        return []
    return response.json()["attributes"].get("cohortsync_cohorts") or []


def adds_up(finished):
    return (
        finished.planned == finished.added + finished.removed + finished.failed + finished.skipped
    )


@pytest.fixture
def held(cohort, connection, marketer):
    """A sync of 10 members whose next run would remove 6 of them, held by the guard."""
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(10)])
    sync = make_sync(cohort=cohort, connection=connection)
    run(sync)
    apply_changes(cohort.pk, remove=[ext(f"u{n}") for n in range(6)])
    held_run = run(sync)
    assert held_run.status == Status.HELD
    return held_run


# Held runs


def test_an_approved_held_run_sends_the_removals(held, sandbox, marketer):
    new_run = approve_held_run(run=held, actor=marketer)
    assert new_run.trigger == SyncRun.Trigger.RESUME
    run_jobs()
    new_run.refresh_from_db()
    assert new_run.status == Status.SUCCEEDED
    assert (new_run.planned_removes, new_run.removed) == (6, 6)
    assert SyncedMember.objects.filter(sync=held.sync).count() == 4
    assert "Churn risk" not in cohorts_of(sandbox, "u0")
    assert "Churn risk" in cohorts_of(sandbox, "u9")
    held.refresh_from_db()
    assert held.status == Status.CANCELED
    assert held.error_summary.startswith(f"Approved by {marketer.username}: run {new_run.pk}")
    assert adds_up(held)
    assert AuditEntry.objects.filter(action="sync.run_approved", actor=marketer).exists()


def test_a_rejected_held_run_removes_nothing_and_pauses_the_sync(held, sandbox, marketer):
    reject_held_run(run=held, actor=marketer)
    held.refresh_from_db()
    assert held.status == Status.CANCELED
    assert held.error_summary.startswith(f"Rejected by {marketer.username}")
    assert adds_up(held)
    held.sync.refresh_from_db()
    assert held.sync.status == Sync.Status.PAUSED
    assert SyncedMember.objects.filter(sync=held.sync).count() == 10
    assert "Churn risk" in cohorts_of(sandbox, "u0")
    assert AuditEntry.objects.filter(action="sync.run_rejected", actor=marketer).exists()


def test_a_held_run_cannot_be_approved_or_rejected_twice(held, marketer):
    reject_held_run(run=held, actor=marketer)
    with pytest.raises(ValidationError, match="not held"):
        approve_held_run(run=held, actor=marketer)
    with pytest.raises(ValidationError, match="not held"):
        reject_held_run(run=held, actor=marketer)
    assert not SyncRun.objects.filter(trigger=SyncRun.Trigger.RESUME).exists()


# Full resync


def test_a_full_resync_resends_every_member_and_still_removes_leavers(
    cohort, connection, sandbox, marketer
):
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(200)])
    sync = make_sync(cohort=cohort, connection=connection)
    run(sync)
    apply_changes(cohort.pk, remove=[ext("u0")])
    before = users_track_requests(sandbox)

    resync = full_resync(sync=sync, actor=marketer)
    run_jobs()
    resync.refresh_from_db()

    assert resync.status == Status.SUCCEEDED
    assert (resync.planned_adds, resync.added) == (199, 199)
    assert (resync.planned_removes, resync.removed) == (1, 1)
    assert users_track_requests(sandbox) - before == 3  # 75 + 75 + 49 re-sent with the removal
    assert "Churn risk" not in cohorts_of(sandbox, "u0")
    assert SyncedMember.objects.filter(sync=sync).count() == 199
    assert AuditEntry.objects.filter(
        action="sync.run_requested", details__trigger=SyncRun.Trigger.RESYNC
    ).exists()


def test_a_full_resync_is_refused_while_a_run_is_queued(cohort, connection, marketer):
    sync = make_sync(cohort=cohort, connection=connection)
    start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    with pytest.raises(ValidationError, match="queued"):
        full_resync(sync=sync, actor=marketer)


# Cancel


def test_canceling_a_queued_run_ends_it_at_once_and_no_worker_starts_it(
    cohort, connection, sandbox, marketer
):
    apply_changes(cohort.pk, add=[ext("u1")])
    sync = make_sync(cohort=cohort, connection=connection)
    queued, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)

    canceled = cancel_run(run=queued, actor=marketer)
    assert canceled.status == Status.CANCELED
    assert canceled.finished_at is not None
    assert canceled.error_summary == f"Canceled by {marketer.username}"
    assert adds_up(canceled)

    run_jobs()
    canceled.refresh_from_db()
    assert canceled.status == Status.CANCELED
    assert users_track_requests(sandbox) == 0
    assert AuditEntry.objects.filter(action="sync.run_canceled", actor=marketer).exists()


@pytest.mark.usefixtures("checkpoint_every_batch")
def test_canceling_a_running_run_stops_it_at_the_next_checkpoint(cohort, sandbox, marketer):
    apply_changes(cohort.pk, add=[ext(f"u{n:03d}") for n in range(900)])
    connection = make_simulator_connection(sandbox, max_concurrent_requests=IN_FLIGHT)
    sync = make_sync(cohort=cohort, connection=connection)
    started, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    real_start, real_finish, real_commit = BatchSender.start, BatchSender.finish, checkpoint.commit
    answered, statuses, sent, sent_after_the_cancel_was_seen = [], [], [], []

    def start(sender, **batch):
        sent.append(1)
        if Status.CANCELED in statuses:
            sent_after_the_cancel_was_seen.append(1)
        return real_start(sender, **batch)

    def finish(sender, started_attempt, **batch):
        # The run takes the second batch's answer: cancel there.
        answered.append(1)
        if len(answered) == 2:
            cancel_run(run=SyncRun.objects.get(pk=started.pk), actor=marketer)
        return real_finish(sender, started_attempt, **batch)

    def commit(pending):
        statuses.append(real_commit(pending))
        return statuses[-1]

    with (
        mock.patch.object(BatchSender, "start", start),
        mock.patch.object(BatchSender, "finish", finish),
        mock.patch.object(checkpoint, "commit", commit),
    ):
        run_jobs()

    started.refresh_from_db()
    assert started.status == Status.CANCELED
    assert started.finished_at is not None
    # The first checkpoint after the cancel saw it: nothing was sent after that, and the
    # batches already in flight were accepted, so they are in the ledger too.
    assert Status.CANCELED in statuses
    assert not sent_after_the_cancel_was_seen
    assert len(sent) <= 1 + UNSETTLED_PER_SLOT * IN_FLIGHT < 900 // 75
    sent_members = len(sent) * 75
    assert (started.planned_adds, started.added) == (900, sent_members)
    assert started.failed == 900 - sent_members  # planned but not reached
    assert adds_up(started)
    assert SyncedMember.objects.filter(sync=sync).count() == sent_members
    assert started.error_summary.startswith(f"Canceled by {marketer.username}")


def test_a_finished_run_cannot_be_canceled(cohort, connection, marketer):
    finished = run(make_sync(cohort=cohort, connection=connection))
    with pytest.raises(ValidationError, match="has finished"):
        cancel_run(run=finished, actor=marketer)


# Delete


def test_deleting_a_sync_is_refused_while_a_run_is_running(cohort, connection, marketer):
    sync = make_sync(cohort=cohort, connection=connection)
    make_run(sync, status=Status.RUNNING)

    with pytest.raises(ValidationError, match="running"):
        delete_sync(sync=sync, actor=marketer)
    assert Sync.objects.filter(pk=sync.pk).exists()


def test_deleting_a_sync_removes_its_runs_and_ledger_and_audits_it(
    cohort, connection, sandbox, marketer
):
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(5)])
    sync = make_sync(cohort=cohort, connection=connection)
    run(sync)
    delete_sync(sync=sync, actor=marketer)
    assert not Sync.objects.filter(pk=sync.pk).exists()
    assert not SyncRun.objects.exists()
    assert not SyncedMember.objects.exists()
    assert Cohort.objects.filter(pk=cohort.pk).exists()
    entry = AuditEntry.objects.get(action="sync.deleted")
    assert entry.details == {"name": "Churn → Braze", "ledger_rows": 5, "runs": 1}


# Pause and resume


def test_a_paused_sync_resumes_with_its_next_run_computed_from_now(cohort, connection, marketer):
    sync = make_sync(cohort=cohort, connection=connection, cadence={"kind": "hourly"})
    Sync.objects.filter(pk=sync.pk).update(next_run_at=None)
    pause_sync(sync=sync, actor=marketer)
    assert Sync.objects.get(pk=sync.pk).status == Sync.Status.PAUSED
    with pytest.raises(ValidationError, match="paused"):
        pause_sync(sync=sync, actor=marketer)

    resumed = resume_sync(sync=sync, actor=marketer)
    assert resumed.status == Sync.Status.ACTIVE
    assert resumed.next_run_at is not None
    assert {e.action for e in AuditEntry.objects.filter(actor=marketer)} == {
        "sync.paused",
        "sync.resumed",
    }


def test_a_sync_needing_attention_resumes_only_once_its_connection_is_healthy(
    cohort, connection, marketer
):
    sync = make_sync(cohort=cohort, connection=connection)
    Sync.objects.filter(pk=sync.pk).update(status=Sync.Status.NEEDS_ATTENTION)
    Connection.objects.filter(pk=connection.pk).update(state=Connection.State.NEEDS_ATTENTION)
    with pytest.raises(ValidationError, match=f"connection {connection.name} is not healthy"):
        resume_sync(sync=sync, actor=marketer)
    assert Sync.objects.get(pk=sync.pk).status == Sync.Status.NEEDS_ATTENTION

    Connection.objects.filter(pk=connection.pk).update(state=Connection.State.HEALTHY)
    assert resume_sync(sync=sync, actor=marketer).status == Sync.Status.ACTIVE
