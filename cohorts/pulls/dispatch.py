"""The dispatcher's tick for Amplitude pulls: queue each pull that is due, once.

A due pull's next_run_at is moved forward by a lease with a compare-and-set update before its
job is queued, so a second dispatcher (or a retried tick) queues nothing twice; the job sets the
real next time when it ends. A job Redis lost leaves the pull due again once the lease passes.
"""

import logging
from collections import Counter
from datetime import datetime, timedelta

import redis
from django.utils import timezone

from cohorts.models import AmplitudePull
from cohorts.queue import PULL_JOB_TIMEOUT, enqueue_pull

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=2 * PULL_JOB_TIMEOUT)
# Amplitude takes about 4 export requests a minute per project (docs/partners/amplitude.md §5):
# pulls of one source due together are spread over the next ticks, the earliest due first.
PER_SOURCE_PER_TICK = 4


def dispatch_due_pulls(*, now: datetime | None = None) -> int:
    """Queue the pulls due by `now`; returns how many were queued."""
    now = now or timezone.now()
    due = (
        AmplitudePull.objects.filter(next_run_at__lte=now)
        .order_by("next_run_at", "pk")
        .values_list("pk", "next_run_at", "connection_id")
    )
    queued = 0
    per_source: Counter[int] = Counter()
    for pull_id, due_at, connection_id in due:
        assert due_at is not None  # the filter says so
        if per_source[connection_id] >= PER_SOURCE_PER_TICK:
            continue
        claimed = AmplitudePull.objects.filter(pk=pull_id, next_run_at=due_at).update(
            next_run_at=now + LEASE
        )
        if not claimed:
            continue
        try:
            enqueue_pull(pull_id, due=f"{due_at.timestamp():.0f}")
        except redis.RedisError as exc:
            # Due again at once: the next tick tries again.
            AmplitudePull.objects.filter(pk=pull_id).update(next_run_at=due_at)
            logger.error("Could not queue Amplitude pull %s: %s", pull_id, type(exc).__name__)
            continue
        queued += 1
        per_source[connection_id] += 1
    return queued
