"""Putting alert deliveries on the `default` queue, named by path so the services that record a
delivery never import the job that sends it (alerts/jobs.py).

A failed delivery is retried by RQ with backoff (MAX_ATTEMPTS in all); the worker's scheduler
(`rqworker --with-scheduler`) runs the retries, so a webhook that is down never holds a worker.
"""

import django_rq
from rq import Retry

DELIVERY_JOB = "alerts.jobs.deliver_alert"
MAX_ATTEMPTS = 3
# Seconds before the second and the third attempt.
RETRY_BACKOFF_SECONDS = [10, 60]


def enqueue_delivery(delivery_id: int) -> None:
    queue = django_rq.get_queue("default", commit_mode="auto")
    queue.enqueue(
        DELIVERY_JOB,
        delivery_id,
        retry=Retry(max=MAX_ATTEMPTS - 1, interval=RETRY_BACKOFF_SECONDS),
        job_timeout=60,
        result_ttl=3600,
        failure_ttl=86400,
    )
