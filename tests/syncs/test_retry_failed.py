"""Retry failed members: a run of the same sync whose plan is the usual diff restricted to the
members that failed in a given run, sent to the partner simulator over real HTTP; refused,
changing nothing, where start_run would refuse or there is nothing to retry."""

import threading

import pytest
from django.core.exceptions import ValidationError

from cohorts.membership import Identity, apply_changes
from connections.partners.braze import simulator as braze_simulator
from core.models import AuditEntry
from syncs.lifecycle import retry_failed_members
from syncs.models import Sync, SyncedMember, SyncRun, SyncRunPlanItem
from syncs.services import start_run
from tests.factories import make_cohort, make_run, make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


class Received:
    """The profile keys of the attribute objects the simulator received, whatever it did
    with them: what a run actually sent."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._lock = threading.Lock()
        self._apply = braze_simulator._apply_attributes

    def __call__(self, state, obj, index):
        identity = braze_simulator._identify(obj)
        with self._lock:
            self.keys.append(getattr(identity, "key", str(identity)))
        return self._apply(state, obj, index)


@pytest.fixture
def received(monkeypatch):
    recorder = Received()
    monkeypatch.setattr(braze_simulator, "_apply_attributes", recorder)
    return recorder


def reject(sandbox, *values):
    sandbox.state.reject_braze_objects([f"external_id:{v}" for v in values], "bad id")


def accept_everyone(sandbox):
    with sandbox.state.lock:
        sandbox.state.braze_rejections.clear()


def run_now(sync):
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    run.refresh_from_db()
    return run


def ledger(sync):
    return set(SyncedMember.objects.filter(sync=sync).values_list("value", flat=True))


def test_a_retry_sends_exactly_the_failed_adds_still_due(connection, sandbox, received, marketer):
    cohort = make_cohort(name="churn", members=[f"m-{n}" for n in range(10)])
    # A member the mapping cannot address: skipped, and not retried.
    apply_changes(cohort.pk, add=[Identity("device_id", "d-1")])
    sync = make_sync(cohort=cohort, connection=connection)
    reject(sandbox, "m-2", "m-5", "m-7")
    first = run_now(sync)
    assert (first.status, first.failed, first.skipped) == (SyncRun.Status.PARTIALLY_FAILED, 3, 1)

    # m-7 leaves the cohort (no longer due); m-10 joins (due, but it did not fail in the run).
    apply_changes(
        cohort.pk, add=[Identity("external_id", "m-10")], remove=[Identity("external_id", "m-7")]
    )
    accept_everyone(sandbox)
    received.keys.clear()

    retry = retry_failed_members(run=first, actor=marketer, ip="203.0.113.9")
    run_jobs()
    retry.refresh_from_db()
    assert sorted(received.keys) == ["external_id:m-2", "external_id:m-5"]
    assert (retry.trigger, retry.retry_of_id, retry.status) == (
        SyncRun.Trigger.RETRY,
        first.pk,
        SyncRun.Status.SUCCEEDED,
    )
    assert (retry.planned_adds, retry.added, retry.failed, retry.skipped) == (2, 2, 0, 0)
    assert ledger(sync) == {f"m-{n}" for n in range(10)} - {"m-7"}
    entry = AuditEntry.objects.get(action="sync.run_requested", details__trigger="retry")
    assert entry.actor == marketer
    assert entry.details["retry_of"] == first.pk

    # The next ordinary run still sends what the retry left out.
    received.keys.clear()
    run_now(sync)
    assert received.keys == ["external_id:m-10"]


def test_a_retry_sends_exactly_the_failed_removals_still_due(connection, sandbox, received):
    cohort = make_cohort(name="vip", members=[f"r-{n}" for n in range(10)])
    sync = make_sync(cohort=cohort, connection=connection)
    assert run_now(sync).status == SyncRun.Status.SUCCEEDED
    apply_changes(cohort.pk, remove=[Identity("external_id", v) for v in ("r-1", "r-2")])
    reject(sandbox, "r-1", "r-2")
    second = run_now(sync)
    assert (second.planned_removes, second.failed) == (2, 2)

    # r-2 came back (no longer to remove); r-3 left since (to remove, but it did not fail).
    apply_changes(
        cohort.pk, add=[Identity("external_id", "r-2")], remove=[Identity("external_id", "r-3")]
    )
    accept_everyone(sandbox)
    received.keys.clear()
    retry = retry_failed_members(run=second, actor=None)
    run_jobs()
    retry.refresh_from_db()
    assert received.keys == ["external_id:r-1"]
    assert (retry.planned_adds, retry.planned_removes, retry.removed) == (0, 1, 1)
    assert ledger(sync) == {f"r-{n}" for n in range(10)} - {"r-1"}


def test_a_retry_whose_run_is_gone_plans_nothing(connection, sandbox, received):
    cohort = make_cohort(name="churn", members=["m-1"])
    sync = make_sync(cohort=cohort, connection=connection)
    reject(sandbox, "m-1")
    first = run_now(sync)
    accept_everyone(sandbox)
    retry = retry_failed_members(run=first, actor=None)
    first.delete()  # gone before a worker takes the retry
    received.keys.clear()
    run_jobs()
    retry.refresh_from_db()
    assert received.keys == []
    assert retry.planned == 0
    assert not SyncRunPlanItem.objects.filter(run=retry).exists()


@pytest.fixture
def failed_run(cohort):
    sync = make_sync(cohort=cohort)
    return make_run(sync, status=SyncRun.Status.PARTIALLY_FAILED, failed=2, planned_adds=2)


def _refused(run, message):
    runs, entries = SyncRun.objects.count(), AuditEntry.objects.count()
    with pytest.raises(ValidationError, match=message):
        retry_failed_members(run=run, actor=None)
    assert (SyncRun.objects.count(), AuditEntry.objects.count()) == (runs, entries)


@pytest.mark.parametrize("status", [Sync.Status.PAUSED, Sync.Status.NEEDS_ATTENTION])
def test_a_sync_not_active_is_refused(failed_run, status):
    Sync.objects.filter(pk=failed_run.sync_id).update(status=status)
    failed_run.refresh_from_db()
    _refused(failed_run, "resume it before retrying")


@pytest.mark.parametrize("status", [SyncRun.Status.QUEUED, SyncRun.Status.RUNNING])
def test_a_run_already_going_is_refused(failed_run, status):
    going = make_run(failed_run.sync, status=status)
    _refused(failed_run, f"Run {going.pk} of .* retry once it has ended")


def test_a_run_without_failed_members_is_refused(cohort):
    sync = make_sync(cohort=cohort)
    _refused(make_run(sync, status=SyncRun.Status.SUCCEEDED, skipped=3), "no failed members")
