"""A run's window (syncs/engine/window.py): small at first (or where the connection's latest
run's answers took it), rate x latency after the first answer, within the connection's limit and
what the partner says remains, halved by a 429."""

from datetime import timedelta

import pytest
from django.utils import timezone

from connections.partners.base import RateLimit
from syncs.engine.events import Kind, record_event
from syncs.engine.window import FIRST_IN_FLIGHT, RECENT_RUNS, Window, known_latency_ms
from syncs.models import Sync, SyncRun
from tests.factories import make_connection, make_run, make_sync

BRAZE = RateLimit(requests=3000, seconds=3)  # 1,000 requests a second


def test_a_run_starts_small_and_never_above_its_limit() -> None:
    assert Window(limit=64, rate=BRAZE).size == FIRST_IN_FLIGHT == 4
    assert Window(limit=2, rate=BRAZE).size == 2


@pytest.mark.parametrize(
    ("latency_ms", "limit", "opened"),
    [
        (50, 64, 50),  # 1,000 a second x 50 ms
        (100, 64, 64),  # rate x latency is 100: the connection's limit holds
        (1, 64, 5),  # a fast partner: one more than before
        (None, 64, 5),  # no answer time yet (a batch that sent nothing): one more
    ],
)
def test_the_first_answer_opens_it_to_rate_times_latency(latency_ms, limit, opened) -> None:
    window = Window(limit=limit, rate=BRAZE)
    window.after_answer(throttled=0, latency_ms=latency_ms, remaining=None)
    assert window.size == opened


def test_what_the_partner_says_remains_bounds_it() -> None:
    window = Window(limit=64, rate=BRAZE)
    window.after_answer(throttled=0, latency_ms=100, remaining=10)
    assert window.size == 10
    window.after_answer(throttled=0, latency_ms=100, remaining=0)
    assert window.size == 1  # never closed altogether: an answer must come to reopen it
    window.after_answer(throttled=0, latency_ms=100, remaining=None)
    assert window.size == 64


def test_a_429_halves_it_once_and_the_next_answers_open_it_again() -> None:
    window = Window(limit=64, rate=RateLimit(requests=100, seconds=1))
    window.after_answer(throttled=0, latency_ms=200, remaining=None)
    assert window.size == 20
    window.after_answer(throttled=1, latency_ms=200, remaining=None)
    assert window.size == 10
    # The same 429 seen again (the next answer of the run) does not halve it twice.
    window.after_answer(throttled=1, latency_ms=200, remaining=None)
    assert window.size == 20
    for throttled in (2, 3, 4, 5, 6):
        window.after_answer(throttled=throttled, latency_ms=200, remaining=None)
    assert window.size == 1


@pytest.mark.parametrize(
    ("known_latency_ms", "limit", "first"),
    [
        (None, 64, FIRST_IN_FLIGHT),  # no run of the connection yet, or its latest met a 429
        (50, 64, 50),  # where the latest run's answers took its window
        (200, 64, 64),  # never past the connection's limit
        (1, 64, FIRST_IN_FLIGHT),  # a fast partner: never below the usual start
        (1, 2, 2),
    ],
)
def test_a_connection_s_latest_answer_time_sets_where_the_next_run_starts(
    known_latency_ms, limit, first
) -> None:
    assert Window(limit=limit, rate=BRAZE, known_latency_ms=known_latency_ms).size == first


def _finished(sync, *, at, latency_ms=None, **fields):
    """A finished run of `sync`, its end on the sync as finish_run leaves it."""
    run = make_run(sync, partner_latency_ms=latency_ms, **fields)
    SyncRun.objects.filter(pk=run.pk).update(finished_at=at)
    Sync.objects.filter(pk=sync.pk).update(last_run_at=at)
    return run


@pytest.mark.django_db
def test_the_answer_time_to_start_from_is_the_latest_finished_sync_s_unless_it_met_a_429() -> None:
    connection = make_connection()
    assert known_latency_ms(connection.pk) is None
    now = timezone.now()
    _finished(make_sync(connection=connection, name="older"), at=now - timedelta(hours=1),
              latency_ms=120)  # fmt: skip
    assert known_latency_ms(connection.pk) == 120
    # A run still going, another connection's: neither counts.
    make_run(make_sync(connection=connection, name="going"), partner_latency_ms=900)
    _finished(make_sync(connection=make_connection(), name="elsewhere"), at=now, latency_ms=5)
    assert known_latency_ms(connection.pk) == 120
    # The sync that finished last: its latest run that made requests, past one that made none.
    latest = make_sync(connection=connection, name="latest")
    timed = _finished(latest, at=now - timedelta(minutes=2), latency_ms=80)
    _finished(latest, at=now - timedelta(minutes=1))
    assert known_latency_ms(connection.pk) == 80
    # Waits for the connection's own bucket are pacing, not the partner's refusal.
    record_event(timed.pk, Kind.THROTTLED, "Waited 2.0 s for the rate limit.", seconds=2.0)
    assert known_latency_ms(connection.pk) == 80
    record_event(timed.pk, Kind.THROTTLED, "Braze answered 429.", status=429, seconds=1.0)
    assert known_latency_ms(connection.pk) is None


@pytest.mark.django_db
def test_a_sync_s_runs_that_made_no_request_are_looked_through_up_to_a_bound() -> None:
    connection = make_connection()
    sync = make_sync(connection=connection)
    now = timezone.now()
    _finished(sync, at=now - timedelta(hours=1), latency_ms=150)
    for minutes in range(RECENT_RUNS - 1, 0, -1):
        _finished(sync, at=now - timedelta(minutes=minutes))
    assert known_latency_ms(connection.pk) == 150
    _finished(sync, at=now)
    assert known_latency_ms(connection.pk) is None
