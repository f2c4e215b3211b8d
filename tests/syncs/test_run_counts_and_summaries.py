"""A run's counts and summary tell the whole truth (#11): every request it makes is counted,
the audience an AppsFlyer sync makes on its first run included, and its summary's sentences
do not run into each other."""

import pytest

from cohorts.membership import Identity, apply_changes
from connections.sandbox import DEMO_APPSFLYER_TOKEN
from syncs.engine.outcome import finish_run, sentence
from syncs.models import SyncRun
from syncs.services import start_run
from tests.factories import make_connection, make_run, make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


def test_the_audience_an_appsflyer_run_creates_is_counted_as_a_request(sandbox, cohort):
    connection = make_connection("appsflyer", endpoint=sandbox.url, secret=DEMO_APPSFLYER_TOKEN)
    devices = [Identity("device_id", f"d{n}", extras=(("gaid", f"g{n}"),)) for n in range(4)]
    apply_changes(cohort.pk, add=devices[:3], update_extras=True)
    sync = make_sync(cohort=cohort, connection=connection, mapping=("gaid",))
    first, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    first.refresh_from_db()
    assert (first.status, first.added) == (SyncRun.Status.SUCCEEDED, 3)
    assert first.requests == 2  # the audience, then the one add request
    apply_changes(cohort.pk, add=devices[3:], update_extras=True)
    second, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    second.refresh_from_db()
    assert second.requests == 1  # the audience exists now


def test_a_summary_ends_each_sentence_before_the_next(cohort, connection):
    sync = make_sync(cohort=cohort, connection=connection)
    run = make_run(sync, status=SyncRun.Status.RUNNING, planned_adds=5)
    finish_run(run, SyncRun.Status.FAILED, "Braze refused the credentials: Invalid API key: ••••")
    run.refresh_from_db()
    assert run.error_summary == (
        "Braze refused the credentials: Invalid API key: ••••. 5 member(s) were not reached."
    )
    assert sentence("Done.") == "Done." and sentence("") == ""


def test_a_braze_delta_carries_adds_and_removes_in_the_same_requests(sandbox, cohort, connection):
    from tests.faults.simulator import in_destination, track_answers

    old = [Identity("external_id", f"old-{n:03}") for n in range(100)]
    apply_changes(cohort.pk, add=old)
    sync = make_sync(cohort=cohort, connection=connection, leaving_members="remove")
    start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    before = track_answers(sandbox).get(201, 0)
    new = [Identity("external_id", f"new-{n:03}") for n in range(100)]
    apply_changes(cohort.pk, add=new, remove=old)
    delta, _ = start_run(sync=sync, trigger=SyncRun.Trigger.RESYNC, actor=None)
    run_jobs()
    delta.refresh_from_db()
    assert (delta.status, delta.added, delta.removed) == (SyncRun.Status.SUCCEEDED, 100, 100)
    # 75 adds; the last 25 adds with 50 removals; the last 50 removals: 3 requests, not 4.
    assert delta.requests == 3
    assert track_answers(sandbox)[201] - before == 3
    assert in_destination(sandbox, cohort.name) == {identity.value for identity in new}
