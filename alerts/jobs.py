"""RQ entry point for alert deliveries: thin, ids in, the service does the work.

A failed delivery is retried by RQ with backoff (MAX_ATTEMPTS in all); the worker's scheduler
(`rqworker --with-scheduler`) runs the retries, so a webhook that is down never holds a worker.
"""

import django_rq
from rq import Retry, get_current_job

from alerts.models import AlertDelivery
from alerts.services import deliver

MAX_ATTEMPTS = 3
# Seconds before the second and the third attempt.
RETRY_BACKOFF_SECONDS = [10, 60]


class DeliveryRetry(Exception):
    """Raised so RQ schedules the next attempt; the message never holds the webhook URL."""


def deliver_alert(delivery_id: int) -> str:
    job = get_current_job()
    last_attempt = job is None or not job.retries_left
    delivery = deliver(delivery_id, last_attempt=last_attempt)
    if delivery is None:
        return "skipped"
    if delivery.status == AlertDelivery.Status.PENDING:
        raise DeliveryRetry(f"Alert delivery {delivery_id} will be retried: {delivery.error}")
    return delivery.status


def enqueue_delivery(delivery_id: int) -> None:
    queue = django_rq.get_queue("default", commit_mode="auto")
    queue.enqueue(
        deliver_alert,
        delivery_id,
        retry=Retry(max=MAX_ATTEMPTS - 1, interval=RETRY_BACKOFF_SECONDS),
        job_timeout=60,
        result_ttl=3600,
        failure_ttl=86400,
    )
