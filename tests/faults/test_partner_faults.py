"""A partner that throttles or fails: 429 storms, 5xx bursts and the rate-limit headers.

The engine runs in this process with its sleep injected, so backoff costs no time, against the
partner simulator over real HTTP.
"""

import time

import pytest

from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort
from connections.models import Connection
from syncs.engine import run as engine
from syncs.engine.run import run_sync
from syncs.models import Sync, SyncedMember, SyncRun, SyncRunEvent
from syncs.services import start_run
from tests.factories import make_sync
from tests.faults.simulator import (
    BATCH,
    PartnerScript,
    Sleeps,
    in_destination,
    sandbox_post,
    track_answers,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]

Kind = SyncRunEvent.Kind


def fill(cohort: Cohort, size: int) -> set[str]:
    values = {f"{cohort.name}-{n:05}" for n in range(size)}
    apply_changes(cohort.pk, add=[Identity("external_id", value) for value in values])
    return values


def braze_sync(cohort: Cohort, connection: Connection, name: str = "faults") -> Sync:
    return make_sync(name=name, cohort=cohort, connection=connection)


def queued_run(sync: Sync) -> SyncRun:
    run, created = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    assert created
    return run


def timeline(run: SyncRun) -> list[str]:
    return list(SyncRunEvent.objects.filter(run=run).order_by("id").values_list("kind", flat=True))


def ledger(sync: Sync) -> set[str]:
    return set(SyncedMember.objects.filter(sync=sync).values_list("dest_value", flat=True))


def test_a_429_storm_is_retried_after_the_partners_reset_time_and_recorded(
    cohort, simulated_braze, sandbox
):
    # The simulator answers the next five requests 429, each with its X-RateLimit-* headers.
    sandbox_post(sandbox, "faults", {"partner": "braze", "statuses": [429] * 5})
    members = fill(cohort, 10 * BATCH)
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)
    sleeps = Sleeps()

    assert run_sync(run.pk, sleep=sleeps) == SyncRun.Status.SUCCEEDED
    run.refresh_from_db()
    assert track_answers(sandbox) == {429: 5, 201: 10}
    assert (run.retries, run.requests) == (5, 15)
    throttled = SyncRunEvent.objects.filter(run=run, kind=Kind.THROTTLED, details__status=429)
    # The storm meets the batches in flight, each retried after the reset: five waits in all.
    assert throttled.count() == 5
    # Each wait is the partner's reset time (plus jitter), slept and counted as throttled time.
    assert sleeps.calls == pytest.approx(
        [event.details["seconds"] for event in throttled], abs=0.01
    )
    assert run.throttled_seconds == pytest.approx(sum(sleeps.calls))
    assert run.throttled_seconds > 0
    assert (run.planned_adds, run.added, run.failed) == (len(members), len(members), 0)
    assert in_destination(sandbox, cohort.name) == members == ledger(sync)


def test_the_partners_rate_limit_headers_pace_the_run_before_it_meets_a_429(
    cohort, simulated_braze, sandbox
):
    # Braze allows 10 requests a second here while the connection believes 3,000 per 3 s: the
    # engine must learn the real limit from X-RateLimit-Remaining and wait for the reset.
    sandbox_post(sandbox, "config", {"braze_rate_limit": 10, "braze_rate_window": 1.0})
    members = fill(cohort, 20 * BATCH)
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the partner's clock is real: really wait
        slept.append(seconds)
        time.sleep(seconds)

    assert run_sync(run.pk, sleep=sleep) == SyncRun.Status.SUCCEEDED
    run.refresh_from_db()
    assert track_answers(sandbox) == {201: 20}
    assert (run.retries, run.requests) == (0, 20)
    assert slept
    assert run.throttled_seconds == pytest.approx(sum(slept), abs=0.01)
    assert run.throttled_seconds > 0
    assert in_destination(sandbox, cohort.name) == members == ledger(sync)


def test_5xx_bursts_and_429s_mid_run_are_retried_and_every_retry_is_on_the_timeline(
    cohort, simulated_braze, sandbox, monkeypatch
):
    # Five failures in a row (the most one batch may meet), later a 429 pair and another burst.
    script = PartnerScript(
        {3: 500, 4: 502, 5: 503, 6: 504, 7: 500, 12: 429, 13: 429, 20: 503, 21: 502, 22: 429}
    )
    monkeypatch.setattr(sandbox.state, "pop_fault", script)
    members = fill(cohort, 20 * BATCH)
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)
    sleeps = Sleeps()

    assert run_sync(run.pk, sleep=sleeps) == SyncRun.Status.SUCCEEDED
    run.refresh_from_db()
    assert track_answers(sandbox) == {201: 20, 500: 2, 502: 2, 503: 2, 504: 1, 429: 3}
    assert (run.retries, run.requests) == (10, 30)
    events = timeline(run)
    assert events.count(Kind.RETRY) == 7
    assert events.count(Kind.THROTTLED) >= 3
    # A 429's wait follows the partner's reset time and is counted as throttled time.
    throttled = SyncRunEvent.objects.filter(run=run, kind=Kind.THROTTLED, details__status=429)
    assert throttled.count() == 3
    assert run.throttled_seconds == pytest.approx(
        sum(event.details["seconds"] for event in throttled), abs=0.05
    )
    assert run.throttled_seconds > 0
    assert len(sleeps.calls) >= 10
    assert (run.planned_adds, run.added, run.failed) == (len(members), len(members), 0)
    assert in_destination(sandbox, cohort.name) == members == ledger(sync)


def test_a_batch_that_fails_six_times_stops_the_run_with_the_ledger_equal_to_the_destination(
    cohort, simulated_braze, sandbox, monkeypatch
):
    # One batch at a time, so the six failures in a row meet the third batch alone.
    monkeypatch.setattr(engine, "SENDS_IN_FLIGHT", 1)
    monkeypatch.setattr(sandbox.state, "pop_fault", PartnerScript({n: 503 for n in range(3, 9)}))
    fill(cohort, 4 * BATCH)
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)

    assert run_sync(run.pk, sleep=Sleeps()) == SyncRun.Status.FAILED
    run.refresh_from_db()
    assert "answered 503" in run.error_summary
    assert "after 6 attempt(s)" in run.error_summary
    assert (run.added, run.failed, run.retries) == (2 * BATCH, 2 * BATCH, 5)
    assert run.planned == run.added + run.removed + run.failed + run.skipped
    assert in_destination(sandbox, cohort.name) == ledger(sync)
    assert len(ledger(sync)) == 2 * BATCH
