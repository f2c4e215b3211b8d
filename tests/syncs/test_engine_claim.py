"""A worker that is alive but slow must never fight the worker the reaper gave its run to:
long waits beat the heartbeat, and a worker whose claim was taken stops without writing. While
it holds its run, the worker collects garbage less often, and restores the collector after."""

import gc
from datetime import timedelta

import pytest
from django.utils import timezone

from core.garbage_collection import YOUNG_THRESHOLD
from syncs.engine.run import RunSender, run_sync
from syncs.models import SyncedMember, SyncRun
from syncs.services import start_run
from tests.factories import make_cohort, make_sync
from tests.jobs import reaper_takes_the_run_after_its_first_checkpoint, run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]
# Eight batches: the reaper takes the run between two of their checkpoints.
MEMBERS = 600


@pytest.fixture
def sync(connection):
    cohort = make_cohort(members=[f"u{n:03d}" for n in range(MEMBERS)])
    return make_sync(cohort=cohort, connection=connection)


@pytest.mark.usefixtures("checkpoint_every_batch")
def test_a_worker_whose_run_was_taken_over_stops_without_writing(sync):
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    with reaper_takes_the_run_after_its_first_checkpoint(run.pk) as written:
        assert run_sync(run.pk) == "lost claim"
    run.refresh_from_db()
    # The first checkpoint stands; the second wrote nothing, for the new holder to send.
    assert written == [SyncRun.Status.RUNNING, None]
    assert (run.status, run.interruptions) == (SyncRun.Status.QUEUED, 1)
    assert 0 < run.added < MEMBERS and run.added % 75 == 0
    assert SyncedMember.objects.filter(sync=sync).count() == run.added

    from syncs.queue import enqueue_run

    enqueue_run(run.pk, attempt=1)
    run_jobs()
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert (run.planned_adds, run.added, run.failed, run.skipped) == (MEMBERS, MEMBERS, 0, 0)
    assert SyncedMember.objects.filter(sync=sync).count() == MEMBERS


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


def test_a_run_collects_garbage_less_often_while_it_sends_and_restores_it_after(sync, monkeypatch):
    before = gc.get_threshold()
    seen = []
    execute = RunSender.execute

    def watched(sender):
        seen.append(gc.get_threshold()[0])
        return execute(sender)

    monkeypatch.setattr(RunSender, "execute", watched)
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    assert run_sync(run.pk) == SyncRun.Status.SUCCEEDED
    assert seen == [YOUNG_THRESHOLD]
    assert gc.get_threshold() == before
