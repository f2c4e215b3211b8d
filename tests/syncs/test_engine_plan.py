"""The run's stored plan: written once when the run plans, read page by page, kept across a
resume, deleted when the run finishes. A member who changes after the plan is skipped, never
sent by a guess."""

from unittest import mock

import pytest

from cohorts.membership import Identity, apply_changes
from syncs.engine.run import RunSender, run_sync
from syncs.models import SyncedMember, SyncRun, SyncRunPlanItem
from syncs.services import start_run
from tests.factories import make_sync
from tests.jobs import reaper_takes_the_run_after_its_first_checkpoint, run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


def ext(value):
    return Identity("external_id", value)


@pytest.fixture
def sync(cohort, connection):
    return make_sync(cohort=cohort, connection=connection)


def run_with(sync, after_plan, trigger=SyncRun.Trigger.MANUAL):
    """Run the sync, calling `after_plan()` once the run has stored its plan."""
    started, created = start_run(sync=sync, trigger=trigger, actor=None)
    assert created
    original_plan = RunSender._plan

    def plan_then(sender):
        original_plan(sender)
        after_plan()

    with mock.patch.object(RunSender, "_plan", plan_then):
        run_jobs()
    started.refresh_from_db()
    return started


def ledger(sync):
    return set(SyncedMember.objects.filter(sync=sync).values_list("value", flat=True))


def stored_adds(sync):
    run = SyncRun.objects.filter(sync=sync).latest("pk")
    return set(
        SyncRunPlanItem.objects.filter(run=run, op=SyncRunPlanItem.Op.ADD).values_list(
            "ref_id", flat=True
        )
    )


def test_the_plan_is_the_diff_and_is_deleted_when_the_run_finishes(cohort, sync):
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(5)])
    run_with(sync, lambda: None)
    apply_changes(cohort.pk, add=[ext(f"new{n}") for n in range(3)])
    stored = {}

    finished = run_with(sync, lambda: stored.update(adds=stored_adds(sync)))
    new = set(cohort.members.filter(value__startswith="new").values_list("id", flat=True))
    assert stored["adds"] == new
    assert not finished.adds_whole_cohort
    assert (finished.status, finished.planned_adds, finished.added) == ("succeeded", 3, 3)
    assert not SyncRunPlanItem.objects.filter(run=finished).exists()


def test_a_first_sync_plans_the_whole_cohort_without_a_row_per_member(cohort, sync):
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(5)])
    stored = {}

    def look_at_the_plan():
        stored.update(adds=stored_adds(sync))
        apply_changes(cohort.pk, add=[ext("late")])  # joined after the plan: not this run's

    finished = run_with(sync, look_at_the_plan)
    assert stored["adds"] == set()
    assert finished.adds_whole_cohort
    early = cohort.members.exclude(value="late")
    assert finished.add_until == max(early.values_list("id", flat=True))
    assert (finished.status, finished.planned_adds, finished.added) == ("succeeded", 5, 5)
    assert ledger(sync) == {f"u{n}" for n in range(5)}


def test_a_member_who_leaves_after_the_plan_is_skipped(cohort, sync):
    apply_changes(cohort.pk, add=[ext("u1"), ext("u2"), ext("u3")])
    finished = run_with(sync, lambda: apply_changes(cohort.pk, remove=[ext("u2")]))
    assert finished.status == SyncRun.Status.SUCCEEDED
    assert (finished.planned_adds, finished.added, finished.skipped) == (3, 2, 1)
    assert "1 left the diff during the run" in finished.error_summary
    assert ledger(sync) == {"u1", "u3"}


def test_a_member_who_comes_back_after_the_plan_is_not_removed(cohort, sync):
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(1, 6)])
    run_with(sync, lambda: None)
    apply_changes(cohort.pk, remove=[ext("u1"), ext("u2")])
    finished = run_with(sync, lambda: apply_changes(cohort.pk, add=[ext("u2")]))
    assert finished.status == SyncRun.Status.SUCCEEDED
    assert (finished.planned_removes, finished.removed, finished.skipped) == (2, 1, 1)
    assert ledger(sync) == {"u2", "u3", "u4", "u5"}


@pytest.mark.usefixtures("checkpoint_every_batch")
@pytest.mark.parametrize("first_sync", [True, False], ids=["whole cohort", "stored plan"])
def test_a_resumed_run_uses_its_plan(cohort, sync, first_sync):
    if not first_sync:
        apply_changes(cohort.pk, add=[ext("seed")])
        run_with(sync, lambda: None)
    # Eight batches: the reaper takes the run between two of their checkpoints.
    apply_changes(cohort.pk, add=[ext(f"u{n:03d}") for n in range(600)])
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    with reaper_takes_the_run_after_its_first_checkpoint(run.pk):
        assert run_sync(run.pk) == "lost claim"
    run.refresh_from_db()
    assert run.adds_whole_cohort == first_sync
    assert SyncRunPlanItem.objects.filter(run=run).count() == (0 if first_sync else 600)
    # Joined after the plan: a re-plan would send them in this run; the plan does not.
    apply_changes(cohort.pk, add=[ext("late-1"), ext("late-2")])

    from syncs.queue import enqueue_run

    enqueue_run(run.pk, attempt=1)
    run_jobs()
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert (run.planned_adds, run.added, run.failed, run.skipped) == (600, 600, 0, 0)
    assert "late-1" not in ledger(sync)
    assert len(ledger(sync)) == 600 + (0 if first_sync else 1)
    assert not SyncRunPlanItem.objects.filter(run=run).exists()


def test_a_held_run_leaves_no_plan_behind(cohort, sync):
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(10)])
    run_with(sync, lambda: None)
    apply_changes(cohort.pk, remove=[ext(f"u{n}") for n in range(8)])
    held = run_with(sync, lambda: None)
    assert held.status == SyncRun.Status.HELD
    assert not SyncRunPlanItem.objects.exists()


def test_a_full_resync_plans_the_whole_cohort(cohort, sync):
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(4)])
    run_with(sync, lambda: None)
    apply_changes(cohort.pk, add=[ext("u9")], remove=[ext("u0")])
    resync = run_with(sync, lambda: None, trigger=SyncRun.Trigger.RESYNC)
    assert resync.status == SyncRun.Status.SUCCEEDED
    assert (resync.planned_adds, resync.added) == (4, 4)
    assert (resync.planned_removes, resync.removed) == (1, 1)
    assert ledger(sync) == {"u1", "u2", "u3", "u9"}
