"""Alerts from real runs: the engine, a real RQ worker and Redis, the partner simulator over
HTTP, and the webhook on a local server. Two failed runs make one alert, not two."""

import pytest
import requests

from alerts.models import AlertDelivery
from cohorts.membership import Identity, apply_changes
from connections.sandbox import DEMO_BRAZE_KEY
from syncs.lifecycle import approve_held_run
from syncs.models import SyncRun
from syncs.services import start_run
from tests.alerts.helpers import configure
from tests.base import make_connection
from tests.factories import make_cohort, make_simulator_connection, make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]

Event = AlertDelivery.Event
Status = SyncRun.Status


def ext(value):
    return Identity("external_id", value)


@pytest.fixture
def cohort():
    return make_cohort(members=[f"u{n}" for n in range(10)])


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Run the sync through the engine, then let a worker deliver what it alerted."""

    def run_sync(sync=None, *, held=None, actor=None):
        if held is not None:
            started = approve_held_run(run=held, actor=actor)
        else:
            started, created = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
            assert created
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()  # the run; its alert is queued once its outcome commits
        run_jobs()  # the alert deliveries
        started.refresh_from_db()
        return started

    return run_sync


def inject(sandbox, *statuses):
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"partner": "braze", "statuses": list(statuses)},
        timeout=5,
    ).raise_for_status()


def test_two_failed_runs_send_one_alert_and_the_next_success_a_recovery(
    cohort, sandbox, webhook, run
):
    configure(webhook_url=webhook.url)
    connection = make_connection(endpoint=sandbox.url, secret=DEMO_BRAZE_KEY)
    sync = make_sync(cohort=cohort, connection=connection)

    inject(sandbox, 400)
    assert run(sync).status == Status.FAILED
    inject(sandbox, 400)
    second = run(sync)
    assert second.status == Status.FAILED

    [alert] = webhook.received
    assert alert["json"]["event"] == "run_failed"
    assert "Sync Churn → Braze failed" in alert["json"]["text"]
    assert "Braze answered 400" in alert["json"]["text"]
    assert AlertDelivery.objects.get().status == AlertDelivery.Status.SENT

    assert run(sync).status == Status.SUCCEEDED
    assert [r["json"]["event"] for r in webhook.received] == ["run_failed", "sync_recovered"]
    assert "10 added" in webhook.received[1]["json"]["text"]


def test_a_refused_key_sends_one_connection_alert_across_two_failed_runs(
    cohort, sandbox, webhook, run
):
    configure(webhook_url=webhook.url)
    bad = make_connection(endpoint=sandbox.url, secret="braze-key-nobody-knows-0000")
    sync = make_sync(cohort=cohort, connection=bad)
    assert run(sync).status == Status.FAILED
    assert run(sync).status == Status.FAILED
    assert AlertDelivery.objects.count() == 1
    [alert] = webhook.received
    assert alert["json"]["event"] == "connection_needs_attention"
    assert alert["json"]["subject"] == {"type": "connection", "id": bad.pk, "name": bad.name}
    assert "1 sync(s) of it are paused" in alert["json"]["text"]


def test_a_held_run_alerts_and_approving_it_sends_the_recovery(
    cohort, sandbox, webhook, run, marketer
):
    configure(webhook_url=webhook.url)
    sync = make_sync(cohort=cohort, connection=make_simulator_connection(sandbox))

    assert run(sync).status == Status.SUCCEEDED
    assert webhook.received == []  # a first success is no news

    apply_changes(cohort.pk, remove=[ext(f"u{n}") for n in range(6)])
    held = run(sync)
    assert held.status == Status.HELD
    assert [r["json"]["event"] for r in webhook.received] == ["run_held"]
    assert "would remove 6 of the 10" in webhook.received[0]["json"]["text"]

    approved = run(held=held, actor=marketer)
    assert approved.status == Status.SUCCEEDED
    assert [r["json"]["event"] for r in webhook.received] == ["run_held", "sync_recovered"]
