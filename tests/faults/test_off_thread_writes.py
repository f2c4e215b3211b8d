"""On PostgreSQL a worker's run reads its plan's pages ahead and writes its group commits on
threads of their own (syncs/engine/background.py, group_commit.py). These tests run the engine
outside a test transaction, as a worker does, so those threads are used; the ledger still ends
equal to the destination, the timeline's batches add up, and a cancel seen by the writer stops
the run with everything the partner accepted in the ledger."""

import threading

import pytest
from django.db import connection

from syncs.engine import checkpoint, diff
from syncs.engine.background import read_ahead
from syncs.engine.group_commit import GATHER_WHILE_WRITING
from syncs.engine.run import UNSETTLED_PER_SLOT, run_sync
from syncs.lifecycle import cancel_run
from syncs.models import SyncRun, SyncRunEvent
from tests.factories import make_simulator_connection
from tests.faults.simulator import BATCH, Sleeps, in_destination
from tests.faults.test_partner_faults import braze_sync, fill, ledger, queued_run

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="threads of their own need PostgreSQL"
)


@postgres_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("rq_redis")
def test_a_workers_run_writes_and_reads_off_its_thread_and_its_ledger_stays_whole(
    cohort, simulated_braze, sandbox, settings, monkeypatch
):
    settings.COHORTSYNC_CHECKPOINT_MEMBERS = 3 * BATCH
    settings.COHORTSYNC_CHECKPOINT_SECONDS = 3600.0
    monkeypatch.setattr("syncs.engine.run.PAGE_MEMBERS", 2 * BATCH)
    threads: dict[str, set[str]] = {"commit": set(), "page": set()}
    real_commit, real_page = checkpoint.commit, diff.page_to_add

    def commit(group):
        threads["commit"].add(threading.current_thread().name)
        return real_commit(group)

    def page_to_add(*args, **kwargs):
        threads["page"].add(threading.current_thread().name)
        return real_page(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "commit", commit)
    monkeypatch.setattr(diff, "page_to_add", page_to_add)
    members = fill(cohort, 10 * BATCH + 5)
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)

    assert run_sync(run.pk, sleep=Sleeps()) == SyncRun.Status.SUCCEEDED

    main = threading.current_thread().name
    assert threads["commit"] and main not in threads["commit"]
    assert threads["page"] == {"plan-pages"}
    run.refresh_from_db()
    assert (run.planned_adds, run.added, run.failed, run.requests) == (len(members),) * 2 + (0, 11)
    assert in_destination(sandbox, cohort.name) == members == ledger(sync)
    assert run.add_cursor == max(sync.cohort.members.values_list("id", flat=True))
    lines = SyncRunEvent.objects.filter(run=run, kind=SyncRunEvent.Kind.BATCH)
    assert sum(line.details["batches"] for line in lines) == 11
    assert sum(line.details["added"] for line in lines) == len(members)


@postgres_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("rq_redis")
def test_a_cancel_seen_by_the_writer_stops_the_run_with_what_was_accepted_in_the_ledger(
    cohort, sandbox, settings, monkeypatch, marketer
):
    settings.COHORTSYNC_CHECKPOINT_MEMBERS = BATCH
    settings.COHORTSYNC_CHECKPOINT_SECONDS = 3600.0
    members = fill(cohort, 40 * BATCH)
    # Two requests in flight at most: the batches sent before the cancel is seen are bounded.
    sync = braze_sync(cohort, make_simulator_connection(sandbox, max_concurrent_requests=2))
    run = queued_run(sync)
    real_commit, commits = checkpoint.commit, []

    def commit(group):
        commits.append(1)
        if len(commits) == 2:
            cancel_run(run=SyncRun.objects.get(pk=run.pk), actor=marketer)
        return real_commit(group)

    monkeypatch.setattr(checkpoint, "commit", commit)

    assert run_sync(run.pk, sleep=Sleeps()) == SyncRun.Status.CANCELED

    run.refresh_from_db()
    # The writer saw the cancel during the second group, the run at the third's hand-over: it
    # had sent those three groups (each of GATHER_WHILE_WRITING batches at most, gathered while
    # the one before was written) and at most its unsettled batches (UNSETTLED_PER_SLOT per
    # request in flight), far from everything; every member the partner holds is in the
    # ledger, counted.
    bound = (3 * GATHER_WHILE_WRITING + UNSETTLED_PER_SLOT * 2) * BATCH
    assert run.added <= bound < len(members) // 2
    assert in_destination(sandbox, cohort.name) == ledger(sync)
    assert len(ledger(sync)) == run.added
    assert run.added + run.failed == run.planned_adds


def test_pages_read_ahead_come_in_order_and_an_error_there_is_raised_here():
    def pages():
        yield from ([n] for n in range(5))
        raise ValueError("the page query failed")

    got = []
    with pytest.raises(ValueError, match="the page query failed"):
        for page in read_ahead(pages, off_thread=True):
            got.append(page)
    assert got == [[0], [1], [2], [3], [4]]


def test_a_run_that_stops_reading_stops_the_reader():
    read = []

    def pages():
        for n in range(1000):
            read.append(n)
            yield [n]

    for page in read_ahead(pages, off_thread=True, depth=2):
        if page == [3]:
            break
    # The reader was at most `depth` pages ahead (and one in hand) when the run stopped.
    assert len(read) <= 3 + 1 + 2 + 1
    assert not [t for t in threading.enumerate() if t.name == "plan-pages"]
