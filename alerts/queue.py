"""Putting alert deliveries on the `default` queue, named by path so the services that record a
delivery never import the job that sends it (alerts/jobs.py).

A delivery is a row first: one whose job Redis did not take (unreachable, or restarted empty)
is queued again by requeue_waiting_deliveries, so an outage delays an alert but loses none.
A failed delivery is retried by RQ with backoff (MAX_ATTEMPTS in all); the worker's scheduler
(`rqworker --with-scheduler`) runs the retries, so a webhook that is down never holds a worker.
"""

from datetime import datetime, timedelta

import django_rq
from django.utils import timezone
from rq import Retry

from alerts.models import AlertDelivery
from core.requeue import requeue_lost

DELIVERY_JOB = "alerts.jobs.deliver_alert"
MAX_ATTEMPTS = 3
# Seconds before the second and the third attempt.
RETRY_BACKOFF_SECONDS = [10, 60]
# The moment between a delivery's commit and its enqueue.
GRACE = timedelta(minutes=1)


def delivery_job_id(delivery_id: int) -> str:
    return f"alert-delivery-{delivery_id}"


def enqueue_delivery(delivery_id: int) -> None:
    queue = django_rq.get_queue("default", commit_mode="auto")
    queue.enqueue(
        DELIVERY_JOB,
        delivery_id,
        job_id=delivery_job_id(delivery_id),
        retry=Retry(max=MAX_ATTEMPTS - 1, interval=RETRY_BACKOFF_SECONDS),
        job_timeout=60,
        result_ttl=3600,
        failure_ttl=86400,
    )


def requeue_waiting_deliveries(*, now: datetime | None = None) -> int:
    """Queue again the pending deliveries whose job Redis does not have; how many."""
    waiting = AlertDelivery.objects.filter(
        status=AlertDelivery.Status.PENDING, created_at__lt=(now or timezone.now()) - GRACE
    ).values_list("pk", flat=True)
    return requeue_lost(waiting, job_id=delivery_job_id, enqueue=enqueue_delivery)
