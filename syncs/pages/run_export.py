"""The CSV of a run's failed and skipped members: one row per SyncRunError, streamed a chunk at a
time, and safe to open in a spreadsheet (written through core.csv_export, which quotes a cell that
would run as a formula)."""

from collections.abc import Iterator

from core.csv_export import FORMULA_STARTS, csv_lines, safe_cell
from syncs.engine.errors import outcome_of
from syncs.models import SyncRun, SyncRunError

__all__ = ["EXPORT_CHUNK", "FORMULA_STARTS", "HEADER", "export_lines", "safe_cell"]

EXPORT_CHUNK = 2_000
HEADER = ["operation", "member", "outcome", "reason", "partner_status", "at"]
# The engine records a member it skips as an error whose reason starts so (syncs.engine.run).
SKIPPED_REASON = "No usable identifier"


def export_lines(run: SyncRun) -> Iterator[str]:
    """CSV lines, header first; the rows come from the database EXPORT_CHUNK at a time."""
    rows = (
        SyncRunError.objects.filter(run=run)
        .order_by("id")
        .values_list("operation", "member", "reason", "partner_status", "created_at")
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    return csv_lines(
        HEADER,
        (
            (operation, member, outcome_of(reason), reason, status, at.isoformat())
            for operation, member, reason, status, at in rows
        ),
    )
