"""A run's errors grouped by reason, commonest first, with a few sample members each, for the
run page and the API."""

from dataclasses import dataclass

from django.db.models import Count

from syncs.engine.errors import outcome_of
from syncs.models import SyncRun, SyncRunError

ERROR_REASONS_SHOWN = 20
SAMPLES_PER_REASON = 5


@dataclass(frozen=True)
class ErrorGroup:
    reason: str
    count: int
    partner_statuses: list[int]
    samples: list[str]

    @property
    def outcome(self) -> str:
        """ "failed" or "skipped"."""
        return outcome_of(self.reason)


def error_groups(run: SyncRun) -> list[ErrorGroup]:
    """One aggregate query, then one sample query per reason (at most ERROR_REASONS_SHOWN)."""
    errors = SyncRunError.objects.filter(run=run)
    counted = errors.values("reason").annotate(count=Count("id")).order_by("-count", "reason")
    groups = []
    for row in counted[:ERROR_REASONS_SHOWN]:
        sample = list(
            errors.filter(reason=row["reason"]).values_list("member", "partner_status")[
                :SAMPLES_PER_REASON
            ]
        )
        statuses = sorted({status for _, status in sample if status is not None})
        groups.append(ErrorGroup(row["reason"], row["count"], statuses, [m for m, _ in sample]))
    return groups
