"""A run's window (syncs/engine/window.py): small at first, rate x latency after the first
answer, within the connection's limit and what the partner says remains, halved by a 429."""

import pytest

from connections.partners.base import RateLimit
from syncs.engine.window import FIRST_IN_FLIGHT, Window

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
