"""A run interrupted rather than failed (#13): the worker asked to stop (core.stopping, raised
by cohortsync/worker.py on SIGTERM), or Redis out of reach longer than a run waits for it. The
run checkpoints what the partner accepted, goes back to the queue with its interruption on the
timeline, and the next run of it finishes the job. Real processes: tests/faults/
test_stops_and_redis_outages.py."""

import pytest
import redis

from cohorts.membership import Identity, apply_changes
from core import stopping
from syncs.engine import pacing
from syncs.engine.run import WORKER_STOPPING, run_sync
from syncs.models import SyncedMember, SyncRun, SyncRunEvent
from syncs.services import start_run
from tests.factories import make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


@pytest.fixture(autouse=True)
def _no_stop_request():
    stopping.forget_stop_request()
    yield
    stopping.forget_stop_request()


def queued_run(cohort, connection, members=1500):
    apply_changes(cohort.pk, add=[Identity("external_id", f"u{n}") for n in range(members)])
    sync = make_sync(cohort=cohort, connection=connection)
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    return run


def interruptions(run):
    return list(
        SyncRunEvent.objects.filter(run=run, kind=SyncRunEvent.Kind.INTERRUPTED).values_list(
            "message", flat=True
        )
    )


@pytest.mark.usefixtures("checkpoint_every_batch")
def test_a_stop_request_hands_the_run_back_at_a_checkpoint_and_the_next_run_finishes_it(
    cohort, connection, monkeypatch
):
    run = queued_run(cohort, connection)
    # The stop arrives once the first batch is checkpointed.
    real_commit = run_sync.__globals__["checkpoint"].commit

    def commit_then_stop(pending):
        status = real_commit(pending)
        stopping.request_stop()
        return status

    monkeypatch.setattr(run_sync.__globals__["checkpoint"], "commit", commit_then_stop)
    assert run_sync(run.pk) == "interrupted"
    run.refresh_from_db()
    assert run.status == SyncRun.Status.QUEUED
    assert run.interruptions == 1
    assert interruptions(run) == [WORKER_STOPPING]
    # What the partner accepted is in the ledger: the batches in flight were settled too.
    assert 0 < run.added == SyncedMember.objects.filter(sync=run.sync).count() < 1500

    monkeypatch.undo()
    stopping.forget_stop_request()
    run_jobs()  # interrupt_run queued the resume as a job of its own
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert (run.added, run.failed, run.skipped) == (1500, 0, 0)


def test_redis_out_of_reach_past_the_bound_interrupts_the_run_instead_of_failing_it(
    cohort, connection, monkeypatch
):
    run = queued_run(cohort, connection, members=10)
    monkeypatch.setattr(pacing, "REDIS_OUTAGE_SECONDS", 0.2)

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Redis is away")

    monkeypatch.setattr(pacing.Admission, "exchange", unreachable)
    assert run_sync(run.pk, sleep=lambda seconds: None) == "interrupted"
    run.refresh_from_db()
    assert run.status == SyncRun.Status.QUEUED
    [message] = interruptions(run)
    assert "Redis" in message and "resumes from its last checkpoint" in message
    assert run.failed == 0
