"""The CSV of a run's failed and skipped members: one row per SyncRunError, streamed a chunk at a
time, and safe to open in a spreadsheet (a cell that would run as a formula is quoted)."""

import csv
from collections.abc import Iterator

from syncs.engine.errors import outcome_of
from syncs.models import SyncRun, SyncRunError

EXPORT_CHUNK = 2_000
HEADER = ["operation", "member", "outcome", "reason", "partner_status", "at"]
# The engine records a member it skips as an error whose reason starts so (syncs.engine.run).
SKIPPED_REASON = "No usable identifier"
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell as text, quoted so that a spreadsheet shows it instead of running it."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file whose write() hands the line back, so csv.writer can feed a streaming response."""

    def write(self, value: str) -> str:
        return value


def export_lines(run: SyncRun) -> Iterator[str]:
    """CSV lines, header first; the rows come from the database EXPORT_CHUNK at a time."""
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    rows = (
        SyncRunError.objects.filter(run=run)
        .order_by("id")
        .values_list("operation", "member", "reason", "partner_status", "created_at")
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    for operation, member, reason, status, at in rows:
        cells = [operation, member, outcome_of(reason), reason, status, at.isoformat()]
        yield writer.writerow([safe_cell(cell) for cell in cells])
