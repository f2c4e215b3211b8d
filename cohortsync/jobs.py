"""Small RQ jobs that belong to no app."""

import logging

from django.utils import timezone

from alerts.queue import requeue_waiting_deliveries
from cohorts.inbound.amplitude.service import requeue_waiting_batches
from cohortsync.retention import purge_expired
from connections.queue import requeue_waiting_checks
from syncs.queue import requeue_waiting_verifications

logger = logging.getLogger(__name__)


def heartbeat() -> str:
    """Prove that rqcron enqueues and a worker runs: the log line shows in the worker's output."""
    now = timezone.now().isoformat()
    logger.info("cron alive at %s", now)
    return now


def requeue_waiting_work() -> int:
    """What people asked for while Redis was unreachable waits in the database: queue it now.
    (Runs and CSV uploads are queued again by their own reapers.)"""
    return (
        requeue_waiting_checks()
        + requeue_waiting_deliveries()
        + requeue_waiting_verifications()
        + requeue_waiting_batches()
    )


def purge_expired_records() -> dict[str, int]:
    """The daily retention job (cohortsync/retention.py): delete the logs past their keep."""
    return purge_expired()
