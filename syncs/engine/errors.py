"""A run's errors as the engine writes them: one row per member it failed or skipped, and how
to tell the two apart by the reason. The run page and the API group them (syncs/pages/
run_errors.py); the CSV export lists them (syncs/pages/run_export.py)."""

from collections.abc import Sequence

from syncs.engine.diff import identity_text
from syncs.models import SyncRunError

# The engine records a member it skips (no identifier the sync can use) with this reason.
SKIPPED_REASON = "No usable identifier"


def skipped_reason(mapping: Sequence[str]) -> str:
    return f"{SKIPPED_REASON} ({' → '.join(mapping)})"


def outcome_of(reason: str) -> str:
    """ "skipped" or "failed"."""
    return "skipped" if reason.startswith(SKIPPED_REASON) else "failed"


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
