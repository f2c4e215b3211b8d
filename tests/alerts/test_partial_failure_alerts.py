"""Alerts on partial failure (#15, "beyond fixing"): a run that reached the partner but failed
at least the configured share of its members alerts once, like a failed run, when the admin
asked for it; below the share, or with the event off, such a run is a working sync."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from alerts.models import AlertDelivery, AlertSettings, AlertState
from alerts.services import update_alert_settings
from syncs.engine.outcome import finish_run
from syncs.models import SyncRun
from tests.alerts.helpers import configure
from tests.base import make_connection
from tests.factories import make_sync

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]

Event = AlertDelivery.Event
Status = SyncRun.Status
HOOK = "https://hooks.example.com/services/T1/B2/abcdefabcdef"


@pytest.fixture
def sync(cohort):
    return make_sync(cohort=cohort, connection=make_connection(name="Braze US"))


@pytest.fixture
def finish(sync, django_capture_on_commit_callbacks):
    """End a run of the sync that planned 100 members, as the engine does, after commit."""

    def finish_with(status, *, failed=0):
        run = SyncRun.objects.create(
            sync=sync,
            trigger=SyncRun.Trigger.MANUAL,
            status=Status.RUNNING,
            planned_adds=100,
            added=100 - failed,
            failed=failed,
        )
        with django_capture_on_commit_callbacks(execute=True):
            finish_run(run, status, f"{failed} member(s) refused." if failed else "")
        return run

    return finish_with


def events():
    return list(AlertDelivery.objects.order_by("id").values_list("event", flat=True))


def partial_failure_alerts(threshold, *, on=True):
    configure(webhook_url=HOOK, on_partial_failure=on)
    row = AlertSettings.load()
    row.partial_failure_threshold_pct = threshold
    row.save()


def test_a_run_failing_the_threshold_share_alerts_once_and_recovers(finish, sync, settings):
    settings.SITE_URL = "https://cohortsync.example.com"
    partial_failure_alerts(25)
    finish(Status.PARTIALLY_FAILED, failed=24)
    assert events() == []
    run = finish(Status.PARTIALLY_FAILED, failed=25)
    finish(Status.PARTIALLY_FAILED, failed=60)  # the same trouble: nothing more
    assert events() == [Event.RUN_PARTIALLY_FAILED]
    alert = AlertDelivery.objects.get()
    assert alert.title == f"Sync {sync.name} failed for many members"
    assert "25 % of its members failed (25 of 100)" in alert.text
    assert alert.url == "https://cohortsync.example.com" + reverse(
        "syncs:run_detail", args=[sync.pk, run.pk]
    )
    finish(Status.PARTIALLY_FAILED, failed=3)
    assert events() == [Event.RUN_PARTIALLY_FAILED, Event.SYNC_RECOVERED]
    recovery = AlertDelivery.objects.order_by("id").last()
    assert "failing for too many of its members" in recovery.text


def test_a_failed_run_after_partial_failures_is_new_trouble(finish):
    partial_failure_alerts(10)
    finish(Status.PARTIALLY_FAILED, failed=50)
    finish(Status.FAILED, failed=100)
    assert events() == [Event.RUN_PARTIALLY_FAILED, Event.RUN_FAILED]


def test_with_the_event_off_a_partial_failure_is_a_working_sync(finish, sync):
    partial_failure_alerts(10, on=False)
    finish(Status.PARTIALLY_FAILED, failed=90)
    assert events() == []
    assert AlertState.objects.get(subject_id=sync.pk).state == AlertState.State.OK


def test_the_threshold_is_validated_and_nothing_changes_when_it_is_not(sync):
    with pytest.raises(ValidationError, match="1 to 100"):
        update_alert_settings(
            email_enabled=False,
            email_recipients="",
            webhook_enabled=False,
            webhook_url=None,
            toggles={},
            partial_failure_threshold_pct=0,
            actor=None,
        )
    assert AlertSettings.load().partial_failure_threshold_pct == 10


def test_the_settings_page_saves_the_event_and_its_threshold(admin_client):
    response = admin_client.post(
        reverse("alerts:settings"),
        {"on_partial_failure": "on", "partial_failure_threshold_pct": "35"},
    )
    assert response.status_code == 302
    row = AlertSettings.load()
    assert (row.on_partial_failure, row.partial_failure_threshold_pct) == (True, 35)
