"""A run's errors: one row per member it failed or skipped, written by the engine, then grouped
by reason, commonest first, with a few sample members each, for the run page and the API."""

from dataclasses import dataclass

from django.db.models import Count

from syncs.diff import identity_text
from syncs.models import SyncRun, SyncRunError
from syncs.run_export import outcome_of

ERROR_REASONS_SHOWN = 20
SAMPLES_PER_REASON = 5


def error_row(
    run_id: int,
    operation: str,
    identity: tuple[str, str, str],
    reason: str,
    partner_status: int | None,
) -> SyncRunError:
    """The row for one member (`identity`: id type, alias label, value) that `operation`
    ("add" or "remove") failed or skipped."""
    return SyncRunError(
        run_id=run_id,
        operation=operation,
        member=identity_text(*identity),
        reason=reason[:255],
        partner_status=partner_status,
    )


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
