"""syncs.engine.checkpoint.commit: a checkpoint of adds writes its ledger rows, counters, cursor,
errors and event together, or nothing when the run was taken over. On PostgreSQL the rows of
members new to the ledger are copied in; one that is there all the same rolls the copy back and
the checkpoint merges instead, keeping the row already there."""

import logging

import pytest
from django.db import connection

from syncs.engine import checkpoint, checkpoint_sql
from syncs.engine.errors import error_row
from syncs.engine.ledger import LedgerRow, record_sent
from syncs.models import SyncedMember, SyncRun, SyncRunError, SyncRunEvent
from tests.factories import make_run, make_sync

pytestmark = pytest.mark.django_db
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the ledger is copied in on PostgreSQL only"
)


def rows(*values: str) -> list[LedgerRow]:
    return [LedgerRow("external_id", "", value, "external_id", value, "") for value in values]


def checkpoint_of(run: SyncRun, sent: list[LedgerRow], **fields: object) -> checkpoint.Checkpoint:
    defaults: dict[str, object] = {
        "run_id": run.pk,
        "interruptions": run.interruptions,
        "sync_id": run.sync_id,
        "counts": {"added": len(sent), "failed": 1, "requests": 1},
        "add_cursor": 42,
        "sent": sent,
        "errors": [error_row(run.pk, "add", ("external_id", "", "bad"), "refused", 400)],
        "event": {"added": len(sent), "batches": 1},
        "new_to_ledger": checkpoint.new_to_ledger(run),
    }
    return checkpoint.Checkpoint(**{**defaults, **fields})  # type: ignore[arg-type]


@pytest.fixture
def run() -> SyncRun:
    return make_run(make_sync(), status=SyncRun.Status.RUNNING)


def test_a_first_runs_checkpoint_writes_its_rows_counters_cursor_error_and_event(run):
    assert checkpoint.commit(checkpoint_of(run, rows("u1", "u2", "u3"))) == "running"

    ledger = SyncedMember.objects.filter(sync_id=run.sync_id)
    assert sorted(ledger.values_list("value", "dest_value", "run_id")) == [
        ("u1", "u1", run.pk),
        ("u2", "u2", run.pk),
        ("u3", "u3", run.pk),
    ]
    run.refresh_from_db()
    assert (run.added, run.failed, run.requests, run.add_cursor) == (3, 1, 1, 42)
    # The rows are stamped with the checkpoint's time, the run's heartbeat.
    assert set(ledger.values_list("added_at", flat=True)) == {run.heartbeat_at}
    assert SyncRunError.objects.get(run=run).member == "external_id:bad"
    event = SyncRunEvent.objects.get(run=run, kind=SyncRunEvent.Kind.BATCH)
    assert event.details == {"added": 3, "batches": 1}


@on_postgresql
def test_a_first_runs_rows_are_copied_in_not_merged(run, monkeypatch):
    def merged(*_):
        raise AssertionError("merged, not copied")

    monkeypatch.setattr(checkpoint_sql, "commit_in_one_statement", merged)
    assert checkpoint.commit(checkpoint_of(run, rows("u1", "u2"))) == "running"
    assert SyncedMember.objects.filter(sync_id=run.sync_id).count() == 2


def test_a_member_in_the_ledger_all_the_same_keeps_its_row_and_the_others_are_written(run, caplog):
    earlier = make_run(run.sync)
    record_sent(run.sync_id, earlier.pk, [LedgerRow("external_id", "", "u2", "braze_id", "b2", "")])

    with caplog.at_level(logging.WARNING, logger="syncs.engine.checkpoint"):
        assert checkpoint.commit(checkpoint_of(run, rows("u1", "u2", "u3"))) == "running"

    ledger = SyncedMember.objects.filter(sync_id=run.sync_id)
    assert sorted(ledger.values_list("value", "dest_type", "run_id")) == [
        ("u1", "external_id", run.pk),
        ("u2", "braze_id", earlier.pk),  # as it was first sent
        ("u3", "external_id", run.pk),
    ]
    run.refresh_from_db()
    # Counted once: the copy that found u2 was rolled back whole before the merge.
    assert (run.added, run.failed, run.add_cursor) == (3, 1, 42)
    assert SyncRunError.objects.filter(run=run).count() == 1
    assert SyncRunEvent.objects.filter(run=run, kind=SyncRunEvent.Kind.BATCH).count() == 1
    if connection.vendor == "postgresql":
        assert "was there already" in caplog.text


def test_a_run_taken_over_writes_nothing(run):
    SyncRun.objects.filter(pk=run.pk).update(interruptions=1)  # a reaper re-queued it

    assert checkpoint.commit(checkpoint_of(run, rows("u1"), new_to_ledger=True)) is None

    assert not SyncedMember.objects.filter(sync_id=run.sync_id).exists()
    run.refresh_from_db()
    assert (run.added, run.failed, run.add_cursor) == (0, 0, 0)
    assert not SyncRunError.objects.filter(run=run).exists()
    assert not SyncRunEvent.objects.filter(run=run).exists()


@pytest.mark.parametrize(
    ("trigger", "interruptions", "new"),
    [
        (SyncRun.Trigger.MANUAL, 0, True),
        (SyncRun.Trigger.SCHEDULE, 0, True),
        (SyncRun.Trigger.RETRY, 0, True),
        # A resumed run sends again what was in flight when its worker stopped.
        (SyncRun.Trigger.MANUAL, 1, False),
        # A full resync re-sends members the ledger holds.
        (SyncRun.Trigger.RESYNC, 0, False),
    ],
)
def test_which_runs_add_only_members_new_to_the_ledger(trigger, interruptions, new):
    run = make_run(make_sync(), trigger=trigger, interruptions=interruptions)
    assert checkpoint.new_to_ledger(run) is new


def test_a_group_of_checkpoints_copies_only_if_each_of_them_may(run):
    fresh = checkpoint_of(run, rows("u1"), new_to_ledger=True)
    resent = checkpoint_of(run, rows("u2"), new_to_ledger=False)
    assert checkpoint.merged([fresh, fresh]).new_to_ledger
    assert not checkpoint.merged([fresh, resent]).new_to_ledger
