"""A worker that is alive but slow must never fight the worker the reaper gave its run to:
long waits beat the heartbeat, and a worker whose claim was taken stops without writing."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db.models import F
from django.utils import timezone

from connections.sandbox import DEMO_BRAZE_KEY
from syncs.engine import RunSender, run_sync
from syncs.membership import Identity, apply_changes
from syncs.models import Cohort, SyncedMember, SyncRun
from syncs.sending import BatchSender
from syncs.sync_services import create_sync, start_run
from tests.base import make_connection
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


@pytest.fixture
def sync(sandbox):
    cohort = Cohort.objects.create(name="Churn risk", source=Cohort.Source.MANUAL)
    apply_changes(cohort.pk, add=[Identity("external_id", f"u{n:03d}") for n in range(150)])
    connection = make_connection(
        endpoint=sandbox.url, secret=DEMO_BRAZE_KEY, update_existing_only=False
    )
    return create_sync(
        name="Churn → Braze",
        cohort=cohort,
        connection=connection,
        identifier_mapping=["external_id"],
        cadence={"kind": "once"},
        actor=None,
    )


def test_a_worker_whose_run_was_taken_over_stops_without_writing(sync):
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    original = BatchSender.finish
    calls = []

    def answer_while_the_reaper_takes_the_run(sender, started, **batch):
        calls.append(1)
        if len(calls) == 2:
            # The reaper believed this worker dead during its second batch and re-queued it.
            SyncRun.objects.filter(pk=run.pk).update(
                status=SyncRun.Status.QUEUED, interruptions=F("interruptions") + 1
            )
        return original(sender, started, **batch)

    with mock.patch.object(BatchSender, "finish", answer_while_the_reaper_takes_the_run):
        assert run_sync(run.pk) == "lost claim"
    run.refresh_from_db()
    # The first batch is checkpointed; the second was rolled back for the new holder to send.
    assert (run.status, run.added, run.interruptions) == (SyncRun.Status.QUEUED, 75, 1)
    assert SyncedMember.objects.filter(sync=sync).count() == 75

    from syncs.jobs import enqueue_run

    enqueue_run(run.pk, attempt=1)
    run_jobs()
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert (run.planned_adds, run.added, run.failed, run.skipped) == (150, 150, 0, 0)
    assert SyncedMember.objects.filter(sync=sync).count() == 150


def test_long_waits_beat_the_heartbeat(sync):
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    long_ago = timezone.now() - timedelta(minutes=10)
    SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.RUNNING, heartbeat_at=long_ago)
    slept = []
    sender = RunSender(SyncRun.objects.get(pk=run.pk), sleep=slept.append)
    sender.sender.sleep(40)
    assert slept == [15.0, 15.0, 10.0]
    run.refresh_from_db()
    assert run.heartbeat_at > long_ago + timedelta(minutes=9)
