"""A key revoked at the partner mid-run: both runs of the connection fail, every sync of the
connection is paused, and one alert says so (a real RQ worker, in process, on a real Redis)."""

import pytest

from alerts.models import AlertDelivery
from connections.models import Connection
from connections.sandbox import DEMO_BRAZE_KEY
from core.models import AuditEntry
from syncs.engine.window import FIRST_IN_FLIGHT
from syncs.models import Sync, SyncRun
from tests.alerts.helpers import configure as configure_alerts
from tests.base import make_connection
from tests.faults.simulator import BATCH, PartnerScript, in_destination, track_answers
from tests.faults.test_partner_faults import braze_sync, fill, ledger, queued_run
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


def test_a_key_revoked_mid_run_fails_both_runs_pauses_every_sync_and_alerts_once(
    cohort, simulated_braze, sandbox, monkeypatch, django_capture_on_commit_callbacks
):
    configure_alerts(recipients="ops@example.com")
    members = sorted(fill(cohort, 4 * BATCH))
    first = braze_sync(cohort, simulated_braze, name="first")
    second = braze_sync(cohort, simulated_braze, name="second")
    elsewhere = braze_sync(
        cohort,
        make_connection(endpoint=sandbox.url, secret=DEMO_BRAZE_KEY, name="other account"),
        name="elsewhere",
    )
    first_run, second_run = queued_run(first), queued_run(second)
    # The key is revoked at the partner just before the third request: two batches got in.
    script = PartnerScript({3: lambda: sandbox.state.revoke_braze_key(DEMO_BRAZE_KEY)})
    monkeypatch.setattr(sandbox.state, "pop_fault", script)

    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()

    for run in (first_run, second_run):
        run.refresh_from_db()
        assert run.status == SyncRun.Status.FAILED
        assert "refused the credentials" in run.error_summary
        assert run.planned == run.added + run.removed + run.failed + run.skipped
    assert (first_run.added, first_run.failed) == (2 * BATCH, 2 * BATCH)
    assert (second_run.added, second_run.failed) == (0, 4 * BATCH)
    # Every batch sent after the revocation is refused once and none is retried. How many of a
    # run's first batches (up to FIRST_IN_FLIGHT) go out before its first refusal comes back
    # depends on timing: at least one a run, at most all of them.
    answers = track_answers(sandbox)
    assert set(answers) == {201, 401} and answers[201] == 2
    assert 2 <= answers[401] <= (FIRST_IN_FLIGHT - 2) + FIRST_IN_FLIGHT
    assert first_run.retries == second_run.retries == 0
    # The two batches that got in, whichever they were, are the ledger.
    assert in_destination(sandbox, cohort.name) == ledger(first)
    assert len(ledger(first)) == 2 * BATCH and ledger(first) <= set(members)
    simulated_braze.refresh_from_db()
    assert simulated_braze.state == Connection.State.NEEDS_ATTENTION
    statuses = dict(Sync.objects.values_list("name", "status"))
    assert statuses == {
        "first": Sync.Status.NEEDS_ATTENTION,
        "second": Sync.Status.NEEDS_ATTENTION,
        "elsewhere": Sync.Status.ACTIVE,
    }
    assert elsewhere.pk  # the other connection's sync is left alone
    assert AuditEntry.objects.filter(action="connection.auth_failed").count() == 1
    alerts = list(AlertDelivery.objects.values_list("event", "subject_type", "subject_id"))
    assert alerts == [
        (AlertDelivery.Event.CONNECTION_NEEDS_ATTENTION, "connection", simulated_braze.pk)
    ]
