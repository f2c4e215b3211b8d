"""A run's errors as the engine writes them: one row per member it failed or skipped, and how
to tell the two apart by the reason. The run page and the API group them (syncs/pages/
run_errors.py); the CSV export lists them (syncs/pages/run_export.py)."""

from collections.abc import Iterator, Sequence

from syncs.engine import diff
from syncs.engine.diff import identity_text
from syncs.models import SyncRun, SyncRunError

# Rows written per INSERT for the members a stopped run did not reach.
UNREACHED_CHUNK = 1000
# The reason on those rows starts so, followed by why the run stopped.
NOT_REACHED = "Not reached"

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


def record_unreached(run: SyncRun, why: str) -> int:
    """A row for each planned member a stopped run (failed, canceled) did not reach, with why
    it stopped, so the errors export and member lookup name them. Read from the run's stored
    plan after its cursors, a page at a time; returns how many rows it wrote."""
    reason = f"{NOT_REACHED}: {why}" if why else NOT_REACHED
    rows = [
        error_row(run.pk, operation, identity, reason, None)
        for operation, identity in _unreached(run)
    ]
    SyncRunError.objects.bulk_create(rows, batch_size=UNREACHED_CHUNK)
    return len(rows)


def _unreached(run: SyncRun) -> Iterator[tuple[str, tuple[str, str, str]]]:
    sync, after = run.sync, run.add_cursor
    until = diff.whole_cohort_until(run)
    # Only who they are: no identifier to choose (an empty mapping).
    while page := diff.page_to_add(
        sync, mapping=(), run_id=run.pk, after_id=after, limit=UNREACHED_CHUNK, until=until
    ):
        after = page.last_ref
        yield from (("add", (m.id_type, m.alias_label, m.value)) for m in page.rows)
    after = run.remove_cursor
    everything = run.trigger == SyncRun.Trigger.CLEANUP
    while removals := diff.page_to_remove(
        sync, run_id=run.pk, after_id=after, limit=UNREACHED_CHUNK, everything=everything
    ):
        after = removals.last_ref
        yield from (("remove", (r.id_type, r.alias_label, r.value)) for r in removals.rows)
