"""A run keeps several batches in flight: the partner sees up to SENDS_IN_FLIGHT requests at
once, never more, and the checkpoints still end with the ledger equal to the destination."""

import threading
import time

import pytest

from syncs.engine import run as engine
from syncs.engine.run import SENDS_IN_FLIGHT, run_sync
from syncs.models import SyncRun, SyncRunEvent
from tests.faults.simulator import BATCH, Sleeps, in_destination, track_answers
from tests.faults.test_partner_faults import braze_sync, fill, ledger, queued_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


class Concurrency:
    """Stands in for the simulator's fault queue to hold each request a moment and count how
    many the partner is answering at once."""

    def __init__(self, hold_seconds: float) -> None:
        self.hold_seconds = hold_seconds
        self.now = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, partner: str) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(self.hold_seconds)
        with self._lock:
            self.now -= 1


@pytest.mark.parametrize("in_flight", [1, SENDS_IN_FLIGHT])
def test_a_run_keeps_its_batches_in_flight_and_checkpoints_them_all(
    cohort, simulated_braze, sandbox, monkeypatch, in_flight
):
    monkeypatch.setattr(engine, "SENDS_IN_FLIGHT", in_flight)
    concurrency = Concurrency(hold_seconds=0.05)
    monkeypatch.setattr(sandbox.state, "pop_fault", concurrency)
    members = fill(cohort, 12 * BATCH + 10)
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)

    assert run_sync(run.pk, sleep=Sleeps()) == SyncRun.Status.SUCCEEDED

    assert concurrency.peak == 1 if in_flight == 1 else 2 <= concurrency.peak <= in_flight
    run.refresh_from_db()
    assert (run.planned_adds, run.added, run.failed, run.requests) == (
        len(members),
        len(members),
        0,
        13,
    )
    assert track_answers(sandbox) == {201: 13}
    assert in_destination(sandbox, cohort.name) == members == ledger(sync)
    # One timeline line per checkpointed batch, in the order the batches were sent.
    batches = SyncRunEvent.objects.filter(run=run, kind=SyncRunEvent.Kind.BATCH)
    assert [event.details["added"] for event in batches] == [BATCH] * 12 + [10]
    assert run.add_cursor == max(sync.cohort.members.values_list("id", flat=True))
