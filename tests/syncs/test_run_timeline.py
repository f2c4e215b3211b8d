"""A run's timeline as its page shows it: steps in order at times since the run was queued,
consecutive batches summed into one row, retries and waits past the first ones summed, and a
fixed number of queries however many events the run wrote."""

from datetime import timedelta

import pytest
import requests
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cohorts.membership import Identity, apply_changes
from syncs.models import SyncRun, SyncRunEvent
from syncs.pages.run_timeline import WAITS_SHOWN, run_timeline
from syncs.services import start_run
from tests.factories import make_run, make_sync
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db
Kind = SyncRunEvent.Kind


@pytest.fixture
def run(cohort):
    return make_run(make_sync(cohort=cohort))


class Clock:
    """Events written one second apart after the run was queued."""

    def __init__(self, run):
        self.run = run
        self.seconds = 0

    def event(self, kind, message="", **details):
        self.seconds += 1
        at = self.run.queued_at + timedelta(seconds=self.seconds)
        return SyncRunEvent(run=self.run, at=at, kind=kind, message=message, details=details)

    def batch(self, added=75, failed=0, skipped=0, removed=0, ms=500):
        counts = {"added": added, "failed": failed, "skipped": skipped}
        if removed:
            counts = {"removed": removed, "failed": failed}
        return self.event(Kind.BATCH, **counts, ms=ms)


def titles(rows):
    return [row.title for row in rows]


@pytest.mark.usefixtures("rq_redis")
def test_a_real_run_reads_as_queued_claimed_planned_its_batches_and_finished(cohort, connection):
    apply_changes(cohort.pk, add=[Identity("external_id", f"u{n:03d}") for n in range(200)])
    sync = make_sync(cohort=cohort, connection=connection)
    started, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    started.refresh_from_db()

    rows = run_timeline(started)

    assert titles(rows) == [
        "Queued",
        "Claimed by a worker",
        "Planned",
        "Batches 1-3",  # 75 + 75 + 50
        "Finished",
    ]
    assert rows[3].text.startswith("+200 added, ")
    assert rows[2].text.startswith("200 to add and 0 to remove")
    assert all(row.since_queued.startswith("+") for row in rows)


def test_consecutive_batches_collapse_into_one_row_between_other_steps(run):
    clock = Clock(run)
    SyncRunEvent.objects.bulk_create(
        [
            clock.event(Kind.QUEUED, "Run now."),
            clock.event(Kind.CLAIMED, "A worker claimed the run."),
            *(clock.batch(ms=2_000) for _ in range(4)),
            clock.batch(added=70, failed=5, ms=2_000),
            clock.event(Kind.RETRY, "Braze answered 503; attempt 2 in 1.0 s.", seconds=1.0),
            clock.batch(added=60, skipped=15),
            clock.batch(removed=40, failed=2, ms=300),
            clock.event(Kind.FINISHED, "Partially failed", status="partially_failed"),
        ]
    )

    rows = run_timeline(run)

    assert titles(rows) == [
        "Queued",
        "Claimed by a worker",
        "Batches 1-5",
        "Retry",
        "Batches 6-7",
        "Finished",
    ]
    assert rows[2].text == "+370 added, 5 failed, 10 s"
    assert rows[4].text == "+60 added, -40 removed, 2 failed, 15 skipped, 0.8 s"
    assert rows[3].text == "Braze answered 503; attempt 2 in 1.0 s."
    # Each row is at its first event's time since the run was queued.
    assert [row.since_queued for row in rows] == [
        "+1.0 s",
        "+2.0 s",
        "+3.0 s",
        "+8.0 s",
        "+9.0 s",
        "+11 s",
    ]


def test_a_single_batch_reads_as_one_batch(run):
    clock = Clock(run)
    SyncRunEvent.objects.bulk_create([clock.batch(added=3, ms=120)])
    [row] = run_timeline(run)
    assert (row.title, row.text) == ("Batch 1", "+3 added, 0.1 s")


def test_retries_and_waits_past_the_first_ones_are_summed_in_one_row(run):
    clock = Clock(run)
    events = [clock.event(Kind.CLAIMED)]
    for n in range(WAITS_SHOWN + 15):
        events.append(clock.batch())
        kind = Kind.THROTTLED if n % 3 else Kind.RETRY
        events.append(clock.event(kind, f"wait {n}", seconds=2.0))
    events.append(clock.batch())
    SyncRunEvent.objects.bulk_create(events)

    rows = run_timeline(run)

    listed = [row for row in rows if row.kind in (Kind.RETRY, Kind.THROTTLED)]
    assert [row.text for row in listed] == [f"wait {n}" for n in range(WAITS_SHOWN)]
    [summary] = [row for row in rows if row.kind == "waits"]
    assert summary.title == "15 more retries and waits"
    assert summary.text == "5 retries and 10 throttled waits, 30 s waited in all"
    # The hidden waits do not split the batches after them: one row from where they start.
    assert rows[-2].title == f"Batches {WAITS_SHOWN + 1}-{WAITS_SHOWN + 16}"
    assert rows[-1] is summary
    assert len(rows) == 1 + 2 * WAITS_SHOWN + 2


def test_a_run_without_events_has_an_empty_timeline(run):
    assert run_timeline(run) == []


def test_the_timeline_costs_at_most_four_queries_for_ten_or_ten_thousand_events(run):
    def build(count):
        SyncRunEvent.objects.filter(run=run).delete()
        clock = Clock(run)
        events = [clock.event(Kind.QUEUED), clock.event(Kind.CLAIMED)]
        for n in range(count):
            events.append(clock.batch())
            if n % 50 == 49:
                events.append(clock.event(Kind.THROTTLED, "wait", seconds=0.5))
        events.append(clock.event(Kind.FINISHED))
        SyncRunEvent.objects.bulk_create(events, batch_size=2_000)

    def queries():
        with CaptureQueriesContext(db) as captured:
            rows = run_timeline(run)
        return len(captured), rows

    build(10)
    few, small = queries()
    build(10_000)
    many, large = queries()
    # Steps, waits, batch stretches; the fourth sums the waits past the first WAITS_SHOWN.
    assert (few, many) == (3, 4)
    assert large[-1].title == "Finished"
    # The listed waits split the batches into WAITS_SHOWN + 1 stretches; the rest do not.
    assert sum(1 for row in large if row.kind == Kind.BATCH) == WAITS_SHOWN + 1
    assert len(small) == 4


def test_times_are_given_since_the_run_was_queued(run):
    at = run.queued_at + timedelta(minutes=1, seconds=30)
    SyncRunEvent.objects.create(run=run, at=at, kind=Kind.FINISHED, message="Succeeded")
    [row] = run_timeline(run)
    assert row.since_queued == "+1 min 30 s"
    assert row.at == at
    assert run.queued_at < timezone.now()


@pytest.mark.usefixtures("rq_redis")
def test_a_throttled_real_run_lists_its_wait(cohort, connection, sandbox):
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"partner": "braze", "statuses": [503]}, timeout=5
    ).raise_for_status()
    apply_changes(cohort.pk, add=[Identity("external_id", "u1")])
    sync = make_sync(cohort=cohort, connection=connection)

    started, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    started.refresh_from_db()
    rows = run_timeline(started)
    assert titles(rows) == [
        "Queued",
        "Claimed by a worker",
        "Planned",
        "Retry",
        "Batch 1",
        "Finished",
    ]
    assert "503" in rows[3].text
