"""A run's page (counts, timeline, requests and answers, errors grouped by reason, a held run's
approval) and the CSV of every member it failed or skipped. Every role reads both; the buttons
need manage_syncs."""

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from core.csv_export import csv_download
from core.roles import check_access, role_required
from syncs.engine import diff
from syncs.models import SyncRun, SyncRunError
from syncs.pages.progress import duration_between, estimate_progress
from syncs.pages.run_errors import ERROR_REASONS_SHOWN, error_groups
from syncs.pages.run_exchanges import run_exchanges
from syncs.pages.run_export import export_lines
from syncs.pages.run_timeline import run_timeline
from syncs.views.syncs import VIEW, queue_note, run_of_sync

REMOVAL_SAMPLE = 20


def _removal_sample(run: SyncRun) -> tuple[list[str], int]:
    """For a held run: some of the members approving it would remove, and how many there are
    now (the cohort may have changed since the run was held)."""
    if run.status != SyncRun.Status.HELD:
        return [], 0
    to_remove = diff.ledger_to_remove(run.sync)
    rows = to_remove.order_by("id").values_list("id_type", "alias_label", "value")
    sample = [diff.identity_text(*row) for row in rows[:REMOVAL_SAMPLE]]
    return sample, to_remove.count() if len(sample) == REMOVAL_SAMPLE else len(sample)


@role_required(VIEW)
@require_GET
def run_detail(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    run = run_of_sync(pk, run_pk)
    removal_sample, removals_now = _removal_sample(run)
    error_rows = SyncRunError.objects.filter(run=run).count()
    context = {
        "sync": run.sync,
        "run": run,
        "progress": estimate_progress(
            processed=run.processed,
            planned=run.planned,
            started_at=run.started_at,
            now=timezone.now(),
            finished=run.status not in SyncRun.ACTIVE,
        ),
        "queue_note": queue_note(run),
        "duration": duration_between(run.started_at, run.finished_at),
        "timeline": run_timeline(run),
        "exchanges": run_exchanges(run),
        "error_groups": error_groups(run),
        "error_rows": error_rows,
        # Counted as failed or skipped without a row of their own: the run stopped before it
        # reached them, or they left the diff while it ran.
        "unlisted": max(0, run.failed + run.skipped - error_rows),
        "reasons_shown": ERROR_REASONS_SHOWN,
        "removal_sample": removal_sample,
        "removals_now": removals_now,
    }
    return render(request, "syncs/syncs/run_detail.html", context)


@require_GET
def run_errors_csv(request: HttpRequest, pk: int, run_pk: int) -> StreamingHttpResponse:
    """Every member the run failed or skipped, streamed: a run of a million members may have a
    million rows, and none of them is held in memory."""
    # Not @role_required: its type admits HttpResponse, and this response streams.
    check_access(request, VIEW)
    run = run_of_sync(pk, run_pk)
    return csv_download(export_lines(run), f"sync-{run.sync_id}-run-{run.pk}-errors.csv")
