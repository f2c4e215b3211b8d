"""How long the logs that grow with traffic are kept, and the daily job that deletes older rows.

Each kind has its own setting, in days (0 keeps it for ever):

| COHORTSYNC_RETENTION_DAYS_... | rows | aged from |
| --- | --- | --- |
| IMPORT_REQUESTS | ImportRequest (the inbound log) | when it arrived |
| REFUSED_COUNTS | RefusedImportCount (refused before a key was shown) | its minute |
| RUN_EVENTS | SyncRunEvent (a run's timeline) | when its run finished |
| RUN_EXCHANGES | SyncRunExchange (a run's requests and answers) | when its run finished |
| AMPLITUDE_BATCHES | AmplitudeBatch (webhook batches applied or failed) | when it arrived |
| ALERT_DELIVERIES | AlertDelivery | when it was queued |

A run keeps its counts, summary and errors: only its timeline and its requests and answers go.
`purge_expired_records` (cohortsync.jobs) runs daily from cohortsync/cron.py and deletes in batches
(core.retention.delete_in_batches) for at most TIME_BUDGET_SECONDS; what is left waits a day.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from alerts.models import AlertDelivery
from cohorts.models import AmplitudeBatch, ImportRequest, RefusedImportCount
from core.retention import BATCH_SIZE, delete_in_batches
from syncs.models import SyncRunEvent, SyncRunExchange

logger = logging.getLogger(__name__)

TIME_BUDGET_SECONDS = 300.0


@dataclass(frozen=True)
class Policy:
    name: str
    setting: str
    expired: Callable[[datetime], "QuerySet[Any]"]  # the rows older than a cutoff


POLICIES = [
    Policy(
        "import_requests",
        "COHORTSYNC_RETENTION_DAYS_IMPORT_REQUESTS",
        lambda cutoff: ImportRequest.objects.filter(created_at__lt=cutoff),
    ),
    Policy(
        "refused_counts",
        "COHORTSYNC_RETENTION_DAYS_REFUSED_COUNTS",
        lambda cutoff: RefusedImportCount.objects.filter(minute__lt=cutoff),
    ),
    Policy(
        "run_events",
        "COHORTSYNC_RETENTION_DAYS_RUN_EVENTS",
        # A held or running run keeps its timeline however old it is.
        lambda cutoff: SyncRunEvent.objects.filter(at__lt=cutoff, run__finished_at__lt=cutoff),
    ),
    Policy(
        "run_exchanges",
        "COHORTSYNC_RETENTION_DAYS_RUN_EXCHANGES",
        # Like the timeline: a held or running run keeps them however old they are.
        lambda cutoff: SyncRunExchange.objects.filter(at__lt=cutoff, run__finished_at__lt=cutoff),
    ),
    Policy(
        "amplitude_batches",
        "COHORTSYNC_RETENTION_DAYS_AMPLITUDE_BATCHES",
        # A batch still queued is kept; a repeat of one deleted arrives long after Amplitude's
        # retries end, and is ordered by its computed time all the same.
        lambda cutoff: AmplitudeBatch.objects.filter(created_at__lt=cutoff).exclude(
            status=AmplitudeBatch.Status.QUEUED
        ),
    ),
    Policy(
        "alert_deliveries",
        "COHORTSYNC_RETENTION_DAYS_ALERT_DELIVERIES",
        lambda cutoff: AlertDelivery.objects.filter(created_at__lt=cutoff),
    ),
]


def purge_expired(
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    time_budget: float = TIME_BUDGET_SECONDS,
) -> dict[str, int]:
    """Delete what each policy no longer keeps; returns rows deleted per policy."""
    now = now or timezone.now()
    deadline = time.monotonic() + time_budget
    deleted: dict[str, int] = {}
    for policy in POLICIES:
        days = int(getattr(settings, policy.setting))
        if days <= 0:
            continue
        deleted[policy.name] = delete_in_batches(
            policy.expired(now - timedelta(days=days)), batch_size=batch_size, deadline=deadline
        )
    logger.info(
        "Retention: deleted %s", ", ".join(f"{n} {name}" for name, n in deleted.items()) or "none"
    )
    return deleted
