"""Putting credential checks on the `default` queue, named by path so the services never import
the job that runs them (connections/jobs.py). A check is a row first: one whose job Redis did
not take (unreachable, or restarted empty) is queued again by requeue_waiting_checks."""

from datetime import datetime, timedelta

import django_rq
from django.utils import timezone

from connections.models import ConnectionCheck
from core.requeue import requeue_lost

CHECK_JOB = "connections.jobs.check_connection"
# The moment between a check's commit and its enqueue.
GRACE = timedelta(minutes=1)


def check_job_id(check_id: int) -> str:
    return f"connection-check-{check_id}"


def enqueue_connection_check(check_id: int) -> None:
    # Called after the check row committed, so the worker always finds it.
    queue = django_rq.get_queue("default", commit_mode="auto")
    queue.enqueue(
        CHECK_JOB,
        check_id,
        job_id=check_job_id(check_id),
        job_timeout=120,
        result_ttl=3600,
        failure_ttl=86400,
    )


def requeue_waiting_checks(*, now: datetime | None = None) -> int:
    """Queue again the checks still waiting whose job Redis does not have; how many."""
    waiting = ConnectionCheck.objects.filter(
        status=ConnectionCheck.Status.QUEUED, created_at__lt=(now or timezone.now()) - GRACE
    ).values_list("pk", flat=True)
    return requeue_lost(waiting, job_id=check_job_id, enqueue=enqueue_connection_check)
