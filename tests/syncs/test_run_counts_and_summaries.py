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
