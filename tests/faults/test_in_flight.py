"""A run keeps as many batches in flight as its connection allows (maximum concurrent requests,
shared through Redis by every run and worker of the connection), never more; it checkpoints the
answered batches together (group commits), and the ledger still ends equal to the destination."""

import threading
import time

import pytest

from connections.concurrency import ConcurrencyLimit
from syncs.engine.run import run_sync
from syncs.engine.window import FIRST_IN_FLIGHT
from syncs.models import SyncRun, SyncRunEvent
from tests.factories import make_cohort, make_simulator_connection
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
        # The most answered at once before the first answer went back: the run's first window.
        self.first_wave = 0
        self.answered = 0
        self._lock = threading.Lock()

    def __call__(self, partner: str) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            if not self.answered:
                self.first_wave = max(self.first_wave, self.now)
        time.sleep(self.hold_seconds)
        with self._lock:
            self.now -= 1
            self.answered += 1

    def start_over(self) -> None:
        self.now = self.peak = self.first_wave = self.answered = 0


@pytest.mark.parametrize("in_flight", [1, 4, 8])
def test_a_run_keeps_as_many_batches_in_flight_as_its_connection_allows(
    cohort, sandbox, monkeypatch, in_flight
):
    connection = make_simulator_connection(sandbox, max_concurrent_requests=in_flight)
    concurrency = Concurrency(hold_seconds=0.05)
    monkeypatch.setattr(sandbox.state, "pop_fault", concurrency)
    members = fill(cohort, 12 * BATCH + 10)
    sync = braze_sync(cohort, connection)
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
    assert run.add_cursor == max(sync.cohort.members.values_list("id", flat=True))
    # Answered batches are checkpointed together: each timeline line says how many it holds.
    lines = SyncRunEvent.objects.filter(run=run, kind=SyncRunEvent.Kind.BATCH)
    assert sum(line.details.get("batches", 1) for line in lines) == 13
    assert sum(line.details["added"] for line in lines) == len(members)


def test_a_group_commit_holds_at_most_its_members_and_keeps_the_ledger_whole(
    cohort, simulated_braze, sandbox, settings
):
    settings.COHORTSYNC_CHECKPOINT_MEMBERS = 3 * BATCH
    settings.COHORTSYNC_CHECKPOINT_SECONDS = 3600.0
    members = fill(cohort, 10 * BATCH)
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)

    assert run_sync(run.pk, sleep=Sleeps()) == SyncRun.Status.SUCCEEDED
    lines = SyncRunEvent.objects.filter(run=run, kind=SyncRunEvent.Kind.BATCH).order_by("id")
    assert [line.details["batches"] for line in lines] == [3, 3, 3, 1]
    assert in_destination(sandbox, cohort.name) == members == ledger(sync)


def test_the_in_flight_limit_is_shared_by_every_holder_of_the_connection(rq_redis):
    # Twelve threads stand for the sending threads of several runs and workers.
    limit = ConcurrencyLimit(rq_redis, "cohortsync:test:slots", 3)
    now = peak = 0
    lock = threading.Lock()

    def request() -> None:
        nonlocal now, peak
        lease, _ = limit.acquire()
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.02)
        with lock:
            now -= 1
        limit.release(lease)

    threads = [threading.Thread(target=request) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 3
    assert limit.in_use() == 0


def test_a_lease_of_a_killed_holder_expires_by_itself(rq_redis, monkeypatch):
    from connections import concurrency

    monkeypatch.setattr(concurrency, "LEASE_SECONDS", 0.05)
    limit = ConcurrencyLimit(rq_redis, "cohortsync:test:expiring", 1)
    limit.acquire()  # never released: its holder died
    started = time.monotonic()
    lease, waited = limit.acquire()
    assert waited > 0
    assert time.monotonic() - started < 5
    limit.release(lease)


def test_after_its_first_answers_a_run_opens_to_what_the_rate_calls_for_at_that_latency(
    cohort, sandbox, monkeypatch
):
    """Each answer takes 50 ms and the connection's rate (Braze's 1,000 a second) calls for
    50 in flight: after the first answers the run holds its connection's 20. Growing by one a
    batch answered (slow start), 24 batches never pass about 14 at once."""
    connection = make_simulator_connection(sandbox, max_concurrent_requests=20)
    concurrency = Concurrency(hold_seconds=0.05)
    monkeypatch.setattr(sandbox.state, "pop_fault", concurrency)
    members = fill(cohort, 24 * BATCH)
    sync = braze_sync(cohort, connection)
    run = queued_run(sync)

    assert run_sync(run.pk, sleep=Sleeps()) == SyncRun.Status.SUCCEEDED

    assert concurrency.peak >= 18
    assert in_destination(sandbox, cohort.name) == members == ledger(sync)


def test_the_next_run_of_a_connection_starts_where_its_latest_run_s_answers_took_it(
    cohort, sandbox, monkeypatch
):
    """The first run of a connection sends 4 batches, then hears how fast the partner answers;
    the next one starts from that answer time (50 ms at 1,000 a second: past the connection's
    20), its first round trip not spent on four batches."""
    connection = make_simulator_connection(sandbox, max_concurrent_requests=20)
    concurrency = Concurrency(hold_seconds=0.05)
    monkeypatch.setattr(sandbox.state, "pop_fault", concurrency)
    fill(cohort, 24 * BATCH)
    first = queued_run(braze_sync(cohort, connection))
    assert run_sync(first.pk, sleep=Sleeps()) == SyncRun.Status.SUCCEEDED
    assert concurrency.first_wave <= FIRST_IN_FLIGHT

    concurrency.start_over()
    other = make_cohort(name="Other")
    fill(other, 24 * BATCH)
    second = queued_run(braze_sync(other, connection, name="second"))
    assert run_sync(second.pk, sleep=Sleeps()) == SyncRun.Status.SUCCEEDED
    assert concurrency.first_wave >= 15
    assert concurrency.peak <= 20
