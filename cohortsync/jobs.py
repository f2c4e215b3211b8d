"""Small RQ jobs that belong to no app."""

import logging

from django.utils import timezone

logger = logging.getLogger(__name__)


def heartbeat() -> str:
    """Prove that rqcron enqueues and a worker runs: the log line shows in the worker's output."""
    now = timezone.now().isoformat()
    logger.info("cron alive at %s", now)
    return now
