"""Delivering alerts: a webhook over real HTTP to a local server, email through Django's mail
backend, a bounded retry, and failures recorded without ever writing the webhook URL down."""

import logging
from datetime import timedelta

import django_rq
import pytest
import redis
from django.core import mail
from django.utils import timezone
from rq.registry import ScheduledJobRegistry

from alerts import jobs, queue, services
from alerts.models import AlertDelivery
from alerts.texts import Alert
from tests.alerts.helpers import configure
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]

Status = AlertDelivery.Status

ALERT = Alert(
    event=AlertDelivery.Event.RUN_FAILED,
    subject_type="sync",
    subject_id=7,
    subject_label="Churn → Braze",
    title="Sync Churn → Braze failed",
    text="Run 12 of sync “Churn → Braze” failed.\nBraze answered 400.",
    url="http://localhost:8000/syncs/7/runs/12/",
)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def raise_and_deliver():
    deliveries = services.raise_alert(ALERT)
    run_jobs()
    for delivery in deliveries:
        delivery.refresh_from_db()
    return deliveries


def assert_secret_kept(webhook, logs, delivery):
    secret_path = webhook.url.split("/services/")[1]
    assert secret_path not in logs.text
    assert secret_path not in delivery.error


def test_a_webhook_alert_posts_slack_compatible_json(webhook):
    configure(webhook_url=webhook.url)
    [delivery] = raise_and_deliver()
    assert (delivery.status, delivery.attempts, delivery.error) == (Status.SENT, 1, "")
    [request] = webhook.received
    assert request["path"] == "/services/T0001/B0002/s3cr3tW3bh00kT0k3n"
    assert request["json"] == {
        "text": "*Sync Churn → Braze failed*\nRun 12 of sync “Churn → Braze” failed.\n"
        "Braze answered 400.\nhttp://localhost:8000/syncs/7/runs/12/",
        "event": "run_failed",
        "subject": {"type": "sync", "id": 7, "name": "Churn → Braze"},
        "url": "http://localhost:8000/syncs/7/runs/12/",
    }


def test_a_webhook_that_fails_once_is_retried_and_succeeds(webhook):
    configure(webhook_url=webhook.url)
    webhook.statuses.extend([503])
    [delivery] = raise_and_deliver()
    assert (delivery.status, delivery.attempts, delivery.error) == (Status.SENT, 2, "")
    assert len(webhook.received) == 2


def test_a_webhook_answering_500_fails_after_three_attempts_with_the_status(webhook, logs):
    configure(webhook_url=webhook.url)
    webhook.statuses.extend([500, 500, 500, 500])
    [delivery] = raise_and_deliver()
    assert delivery.status == Status.FAILED
    assert delivery.attempts == queue.MAX_ATTEMPTS == 3
    assert delivery.error == "The webhook answered HTTP 500: invalid_token"
    assert len(webhook.received) == 3
    assert delivery.finished_at is not None
    assert_secret_kept(webhook, logs, delivery)


def test_a_webhook_that_does_not_answer_in_time_fails_with_a_timeout(webhook, logs):
    configure(webhook_url=webhook.url)
    webhook.delay = 1.5  # longer than the 0.5 s the tests give it
    [delivery] = raise_and_deliver()
    assert delivery.status == Status.FAILED
    assert delivery.error == "The webhook did not answer within 0.5 s."
    assert delivery.attempts == 3
    assert_secret_kept(webhook, logs, delivery)


def test_a_webhook_whose_server_is_down_fails_with_connection_refused(webhook, logs):
    configure(webhook_url=webhook.url)
    webhook.stop()  # the port is closed now: connections are refused
    [delivery] = raise_and_deliver()
    assert delivery.status == Status.FAILED
    assert delivery.error == "The webhook's server refused the connection."
    assert_secret_kept(webhook, logs, delivery)


def test_retries_wait_for_the_backoff_in_the_scheduler(webhook, monkeypatch, rq_redis):
    """With the real backoff, the second attempt is scheduled, not run at once."""
    monkeypatch.setattr(queue, "RETRY_BACKOFF_SECONDS", [10, 60])
    configure(webhook_url=webhook.url)
    webhook.statuses.extend([500])
    [delivery] = raise_and_deliver()
    assert (delivery.status, delivery.attempts) == (Status.PENDING, 1)
    assert delivery.error == "The webhook answered HTTP 500: invalid_token"
    assert len(ScheduledJobRegistry(queue=django_rq.get_queue("default"))) == 1


def test_an_email_alert_goes_to_every_recipient_with_the_link():
    configure(recipients="ops@example.com\noncall@example.com")
    [delivery] = raise_and_deliver()
    assert delivery.status == Status.SENT
    [message] = mail.outbox
    assert message.to == ["ops@example.com", "oncall@example.com"]
    assert message.subject == "[cohortsync] Sync Churn → Braze failed"
    assert "Braze answered 400." in message.body
    assert "http://localhost:8000/syncs/7/runs/12/" in message.body
    assert message.from_email == "cohortsync@localhost"


def test_an_email_that_cannot_be_sent_is_recorded_as_failed(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens on discard
    settings.EMAIL_USE_TLS, settings.EMAIL_TIMEOUT = False, 2
    configure(recipients="ops@example.com")
    [delivery] = raise_and_deliver()
    assert delivery.status == Status.FAILED
    assert delivery.attempts == 3
    assert delivery.error.startswith("The mail was not sent: ConnectionRefusedError")


def test_a_channel_turned_off_before_sending_fails_at_once_without_retries(webhook):
    configure(webhook_url=webhook.url)
    deliveries = services.raise_alert(ALERT)
    configure(recipients="ops@example.com")  # the webhook is off now
    run_jobs()
    deliveries[0].refresh_from_db()
    assert deliveries[0].status == Status.FAILED
    assert deliveries[0].attempts == 1
    assert deliveries[0].error == "Webhook alerts were turned off."
    assert webhook.received == []


def test_an_alert_raised_while_the_queue_is_unreachable_waits_and_is_sent_once_it_is_back(
    webhook, monkeypatch
):
    configure(webhook_url=webhook.url)

    def down(delivery_id):
        raise redis.ConnectionError("no Redis")

    with monkeypatch.context() as patched:
        patched.setattr(services, "enqueue_delivery", down)
        [delivery] = services.raise_alert(ALERT)
    delivery.refresh_from_db()
    assert delivery.status == Status.PENDING
    assert webhook.received == []
    # Redis is back: the minute's requeue_waiting_work queues it, and it is sent once.
    assert queue.requeue_waiting_deliveries(now=timezone.now() + timedelta(minutes=2)) == 1
    assert queue.requeue_waiting_deliveries(now=timezone.now() + timedelta(minutes=2)) == 0
    run_jobs()
    delivery.refresh_from_db()
    assert delivery.status == Status.SENT
    assert len(webhook.received) == 1


def test_a_delivery_is_sent_once_even_if_its_job_runs_twice(webhook):
    configure(webhook_url=webhook.url)
    [delivery] = raise_and_deliver()
    assert jobs.deliver_alert(delivery.pk) == "skipped"
    assert len(webhook.received) == 1
