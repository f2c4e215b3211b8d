"""Sync pages: the list, a sync's page with Run now and its history, and a run's live progress
(htmx). Every role reads; marketers and admins run. Creating and editing a sync:
syncs.views.wizard; a run's own page and its CSV of errors: syncs.views.runs."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from core.audit import client_ip
from core.roles import request_actor, role_required
from syncs import cadence as cadences
from syncs.models import Sync, SyncRun
from syncs.pages.charts import BarChart, RunCounts, run_changes_chart
from syncs.pages.history_filters import RunHistoryFilter
from syncs.pages.progress import RunProgress, duration_between, estimate_progress
from syncs.services import QUEUE_UNREACHABLE, start_run, waits_for_queue

VIEW = "syncs.view_sync"
MANAGE = "syncs.manage_syncs"
PAGE_SIZE = 50
HISTORY_SIZE = 25
CHART_RUNS = 30
RUN_FINISHED_EVENT = "run-finished"


def _cadence_text(sync: Sync) -> str:
    # One sync with a bad stored cadence must not take the whole list page down.
    try:
        return cadences.describe(cadences.parse_cadence(sync.cadence), spread_key=sync.pk)
    except cadences.CadenceError as exc:
        return f"Invalid cadence: {exc}"


def _progress(run: SyncRun) -> RunProgress:
    return estimate_progress(
        processed=run.processed,
        planned=run.planned,
        started_at=run.started_at,
        now=timezone.now(),
        finished=run.status not in SyncRun.ACTIVE,
    )


def run_of_sync(pk: int, run_pk: int) -> SyncRun:
    """The run, which must belong to the sync in the URL."""
    return get_object_or_404(
        SyncRun.objects.select_related("sync", "requested_by"), pk=run_pk, sync_id=pk
    )


@role_required(VIEW)
def sync_list(request: HttpRequest) -> HttpResponse:
    syncs = Sync.objects.select_related("cohort", "connection")
    page = Paginator(syncs, PAGE_SIZE).get_page(request.GET.get("page"))
    labels = dict(SyncRun.Status.choices)
    rows = [
        (sync, _cadence_text(sync), labels.get(sync.last_run_status, sync.last_run_status))
        for sync in page.object_list
    ]
    context = {"page": page, "rows": rows, "now": timezone.now()}
    return render(request, "syncs/syncs/list.html", context)


def _run_chart(sync: Sync) -> BarChart | None:
    """Adds, removes and failures of the sync's latest finished runs: one query."""
    latest = sync.runs.filter(finished_at__isnull=False).order_by("-queued_at", "-id")
    rows = latest.values_list("pk", "added", "removed", "failed")[:CHART_RUNS]
    return run_changes_chart([RunCounts(*row) for row in list(rows)[::-1]])


@role_required(VIEW)
def sync_detail(request: HttpRequest, pk: int) -> HttpResponse:
    sync = get_object_or_404(Sync.objects.select_related("cohort", "connection"), pk=pk)
    # At most one run is queued or running: the database enforces it.
    active = sync.runs.filter(status__in=SyncRun.ACTIVE).first()
    filters = RunHistoryFilter(request.GET)
    page = None
    if filters.is_valid():
        runs = filters.apply(sync.runs.all())
        page = Paginator(runs, HISTORY_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "sync": sync,
        "cadence": _cadence_text(sync),
        "filters": filters,
        "filtered": any(request.GET.get(name) for name in filters.fields),
        "query": query.urlencode(),
        "page": page,
        "history": [
            (run, duration_between(run.started_at, run.finished_at))
            for run in (page.object_list if page else [])
        ],
        "latest": active,
        "progress": _progress(active) if active else None,
        "queue_note": queue_note(active) if active else "",
        "chart": _run_chart(sync),
        "chart_runs": CHART_RUNS,
    }
    # A filter that is not a status or a trigger: the page says so and lists nothing.
    return render(request, "syncs/syncs/detail.html", context, status=400 if page is None else 200)


@role_required(MANAGE)
@require_POST
def sync_run_now(request: HttpRequest, pk: int) -> HttpResponse:
    sync = get_object_or_404(Sync, pk=pk)
    run, created = start_run(
        sync=sync,
        trigger=SyncRun.Trigger.MANUAL,
        actor=request_actor(request),
        ip=client_ip(request),
    )
    # A new run needs no message: its live card on the sync page says where it is, and a
    # message would still say "queued" once the card says "succeeded".
    if not created:
        text = 'Run now started no second run: run {} was {} already. <a href="{}">See run {}</a>.'
        run_url = reverse("syncs:run_detail", args=[sync.pk, run.pk])
        status = run.get_status_display().lower()
        messages.info(request, format_html(text, run.pk, status, run_url, run.pk))
    return redirect("syncs:sync_detail", pk=sync.pk)


def queue_note(run: SyncRun) -> str:
    """What the run's card says while its job waits for Redis; once the run moves on, nothing."""
    return QUEUE_UNREACHABLE if waits_for_queue(run) else ""


@role_required(VIEW)
def run_progress(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    run = run_of_sync(pk, run_pk)
    context = {"run": run, "progress": _progress(run), "queue_note": queue_note(run)}
    response = render(request, "syncs/syncs/_run_progress.html", context)
    if run.status not in SyncRun.ACTIVE:
        # htmx raises this event on the page: the sync page refreshes its history and chart.
        response["HX-Trigger"] = RUN_FINISHED_EVENT
    return response
