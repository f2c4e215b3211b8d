"""Noise control as a state machine: one alert when a sync or connection first gets into
trouble, one when it recovers, nothing for the same trouble again."""

import logging

import pytest

from alerts import receivers
from alerts.models import AlertDelivery, AlertState
from connections.models import Connection
from connections.sandbox import DEMO_BRAZE_KEY
from connections.services import request_connection_check, update_connection
from syncs.engine.outcome import finish_run, refuse_connection
from syncs.models import SyncRun
from tests.alerts.helpers import configure
from tests.base import make_connection
from tests.factories import make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]

Event = AlertDelivery.Event
Status = SyncRun.Status
HOOK = "https://hooks.example.com/services/T1/B2/abcdefabcdef"


@pytest.fixture
def sync(cohort):
    return make_sync(cohort=cohort, connection=make_connection(name="Braze US"))


@pytest.fixture
def finish(sync, django_capture_on_commit_callbacks):
    """End a new run of the sync with a status, as the engine does, after commit."""

    def finish_with(status, message="", *, of=None):
        run = SyncRun.objects.create(
            sync=of or sync, trigger=SyncRun.Trigger.MANUAL, status=Status.RUNNING
        )
        with django_capture_on_commit_callbacks(execute=True):
            finish_run(run, status, message)
        return run

    return finish_with


def events():
    return list(AlertDelivery.objects.order_by("id").values_list("event", flat=True))


def test_three_failures_send_one_alert_and_a_success_one_recovery(finish):
    configure(webhook_url=HOOK)
    finish(Status.FAILED, "Braze answered 400 (Bad Request) after 1 attempt(s).")
    finish(Status.FAILED, "Braze answered 400 again.")
    finish(Status.FAILED, "Braze answered 400 again.")
    assert events() == [Event.RUN_FAILED]
    finish(Status.SUCCEEDED)
    finish(Status.SUCCEEDED)
    assert events() == [Event.RUN_FAILED, Event.SYNC_RECOVERED]
    finish(Status.FAILED, "A new failure.")
    assert events() == [Event.RUN_FAILED, Event.SYNC_RECOVERED, Event.RUN_FAILED]


def test_one_delivery_per_configured_channel(finish):
    configure(webhook_url=HOOK, recipients="ops@example.com, oncall@example.com")
    finish(Status.FAILED, "boom")
    assert sorted(AlertDelivery.objects.values_list("channel", flat=True)) == [
        AlertDelivery.Channel.EMAIL,
        AlertDelivery.Channel.WEBHOOK,
    ]


def test_a_held_run_alerts_once_and_the_next_success_recovers(finish):
    configure(webhook_url=HOOK)
    finish(Status.HELD, "This run would remove 6 of the 10 members (more than 50 %).")
    finish(Status.HELD, "Held again by the next schedule.")
    assert events() == [Event.RUN_HELD]
    finish(Status.PARTIALLY_FAILED)
    assert events() == [Event.RUN_HELD, Event.SYNC_RECOVERED]
    held = AlertDelivery.objects.get(event=Event.RUN_HELD)
    assert "would remove 6 of the 10" in held.text
    assert "held for approval since" in AlertDelivery.objects.get(event=Event.SYNC_RECOVERED).text


def test_failing_then_held_is_new_trouble(finish):
    configure(webhook_url=HOOK)
    finish(Status.FAILED, "boom")
    finish(Status.HELD, "guard")
    assert events() == [Event.RUN_FAILED, Event.RUN_HELD]


@pytest.mark.parametrize("status", [Status.CANCELED, Status.SKIPPED])
def test_canceled_and_skipped_runs_say_nothing_about_the_sync(finish, status):
    configure(webhook_url=HOOK)
    finish(Status.FAILED, "boom")
    finish(status, "Canceled by someone")
    assert AlertState.objects.get(subject_type="sync").state == AlertState.State.FAILING
    assert events() == [Event.RUN_FAILED]


def test_each_sync_has_its_own_state(finish, sync):
    configure(webhook_url=HOOK)
    other = make_sync(name="Other", cohort=sync.cohort, connection=sync.connection)

    finish(Status.FAILED, "boom")
    finish(Status.FAILED, "boom", of=other)
    assert sorted(AlertDelivery.objects.values_list("subject_id", flat=True)) == sorted(
        [sync.pk, other.pk]
    )


def test_a_turned_off_event_sends_nothing_but_its_state_is_kept(finish):
    configure(webhook_url=HOOK, on_run_failed=False, on_recovery=False)
    finish(Status.FAILED, "boom")
    assert events() == []
    assert AlertState.objects.get(subject_type="sync").state == AlertState.State.FAILING
    finish(Status.SUCCEEDED)
    assert events() == []
    assert AlertState.objects.get(subject_type="sync").state == AlertState.State.OK


def test_with_no_channel_configured_nothing_is_queued(finish):
    finish(Status.FAILED, "boom")
    assert events() == []


def test_the_alert_names_the_sync_the_error_the_counts_and_links_to_the_run(finish, sync, settings):
    settings.SITE_URL = "https://cohortsync.example.com"
    configure(webhook_url=HOOK)
    run = finish(Status.FAILED, "Braze answered 400 (Bad Request) after 1 attempt(s).")
    alert = AlertDelivery.objects.get()
    assert alert.title == "Sync Churn → Braze failed"
    assert f"Run {run.pk} of sync “Churn → Braze” (“Churn risk” → Braze US) failed." in alert.text
    assert "Braze answered 400 (Bad Request)" in alert.text
    assert "Planned 0: 0 added, 0 removed, 0 failed, 0 skipped." in alert.text
    assert alert.url == f"https://cohortsync.example.com/syncs/{sync.pk}/runs/{run.pk}/"


def test_an_alert_that_cannot_be_raised_never_breaks_the_run(finish, monkeypatch, caplog):
    configure(webhook_url=HOOK)

    def broken(alert):
        raise RuntimeError("alerts are broken")

    monkeypatch.setattr(receivers, "raise_alert", broken)
    with caplog.at_level(logging.ERROR, logger="alerts.receivers"):
        run = finish(Status.FAILED, "boom")
    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert "Could not raise the alert for run" in caplog.text


# Connections


def test_a_refused_connection_alerts_once(django_capture_on_commit_callbacks):
    configure(webhook_url=HOOK)
    connection = make_connection(name="Braze EU")
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            refuse_connection(connection, "Braze refused the credentials (401).")
    assert events() == [Event.CONNECTION_NEEDS_ATTENTION]
    alert = AlertDelivery.objects.get()
    assert alert.title == "Connection Braze EU needs attention"
    assert "Braze refused the credentials (401)." in alert.text
    assert alert.url.endswith(f"/connections/{connection.pk}/")


def test_a_refused_check_alerts_and_a_healthy_check_recovers(
    sandbox, django_capture_on_commit_callbacks
):
    """Through the "Test connection" job against the simulator, as an admin would."""
    configure(webhook_url=HOOK)
    connection = make_connection(endpoint=sandbox.url, secret="braze-key-nobody-knows-0000")

    def check():
        request_connection_check(connection=connection, actor=None)
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()
        connection.refresh_from_db()

    check()
    assert connection.state == Connection.State.NEEDS_ATTENTION
    check()
    assert events() == [Event.CONNECTION_NEEDS_ATTENTION]
    update_connection(
        connection=connection,
        name=connection.name,
        config=connection.get_config(),
        secret=DEMO_BRAZE_KEY,
        actor=None,
    )
    check()
    assert connection.state == Connection.State.HEALTHY
    check()
    assert events() == [Event.CONNECTION_NEEDS_ATTENTION, Event.CONNECTION_RECOVERED]
    assert (
        "needed attention since" in AlertDelivery.objects.get(event=Event.CONNECTION_RECOVERED).text
    )


def test_a_first_healthy_check_of_a_new_connection_sends_nothing(
    sandbox, django_capture_on_commit_callbacks
):
    configure(webhook_url=HOOK)
    connection = make_connection(endpoint=sandbox.url, secret=DEMO_BRAZE_KEY)
    request_connection_check(connection=connection, actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    connection.refresh_from_db()
    assert connection.state == Connection.State.HEALTHY
    assert events() == []
