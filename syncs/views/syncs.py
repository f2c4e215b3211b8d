"""Sync pages: the list, the creation form, a sync's page with Run now and its history, and a
run's page with its live progress (htmx) and errors grouped by reason. Every role reads;
marketers and admins create and run."""

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from cohortsync.audit import client_ip
from cohortsync.roles import role_required
from syncs import cadence as cadences
from syncs import diff
from syncs.models import Sync, SyncRun, SyncRunError
from syncs.run_progress import RunProgress, duration_between, estimate_progress
from syncs.sync_forms import LEAVING_HELP, SyncForm
from syncs.sync_services import create_sync, start_run

VIEW = "syncs.view_sync"
MANAGE = "syncs.manage_syncs"
PAGE_SIZE = 50
HISTORY_SIZE = 25
ERROR_REASONS_SHOWN = 20
SAMPLES_PER_REASON = 5
REMOVAL_SAMPLE = 20


@dataclass(frozen=True)
class ErrorGroup:
    reason: str
    count: int
    partner_statuses: list[int]
    samples: list[str]


def request_actor(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # role_required let only signed-in users through
    return user


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
    return render(request, "syncs/syncs/list.html", {"page": page, "rows": rows})


@role_required(MANAGE)
def sync_create(request: HttpRequest) -> HttpResponse:
    form = SyncForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            sync = create_sync(
                name=data["name"],
                cohort=data["cohort"],
                connection=data["connection"],
                identifier_mapping=form.identifier_mapping(),
                cadence=form.cadence_dict(),
                options=form.options(),
                leaving_members=data["leaving_members"],
                mass_removal_threshold_pct=data["mass_removal_threshold_pct"],
                actor=request_actor(request),
                ip=client_ip(request),
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Sync {sync.name} created. Press Run now to send it.")
            return redirect("sync_pages:sync_detail", pk=sync.pk)
    context = {"form": form, "leaving_help": LEAVING_HELP}
    return render(request, "syncs/syncs/form.html", context)


@role_required(VIEW)
def sync_detail(request: HttpRequest, pk: int) -> HttpResponse:
    sync = get_object_or_404(Sync.objects.select_related("cohort", "connection"), pk=pk)
    runs = list(sync.runs.select_related("requested_by")[:HISTORY_SIZE])
    latest = runs[0] if runs else None
    context = {
        "sync": sync,
        "cadence": _cadence_text(sync),
        "history": [(run, duration_between(run.started_at, run.finished_at)) for run in runs],
        "latest": latest if latest and latest.status in SyncRun.ACTIVE else None,
        "progress": _progress(latest) if latest else None,
    }
    return render(request, "syncs/syncs/detail.html", context)


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
    run_url = reverse("sync_pages:run_detail", args=[sync.pk, run.pk])
    if not created:
        text = 'A run of this sync is already {}: <a href="{}">watch run {}</a>.'
        messages.info(request, format_html(text, run.get_status_display().lower(), run_url, run.pk))
    elif run.status == SyncRun.Status.FAILED:
        messages.error(request, run.error_summary)
    else:
        messages.success(request, "Run queued; a worker starts it in a moment.")
    return redirect("sync_pages:sync_detail", pk=sync.pk)


def _error_groups(run: SyncRun) -> list[ErrorGroup]:
    """The commonest failure reasons first: one aggregate query, then one sample query each."""
    errors = SyncRunError.objects.filter(run=run)
    counted = (errors.values("reason").annotate(count=Count("id")).order_by("-count", "reason"))[
        :ERROR_REASONS_SHOWN
    ]
    groups = []
    for row in counted:
        sample = list(
            errors.filter(reason=row["reason"]).values_list("member", "partner_status")[
                :SAMPLES_PER_REASON
            ]
        )
        statuses = sorted({status for _, status in sample if status is not None})
        groups.append(ErrorGroup(row["reason"], row["count"], statuses, [m for m, _ in sample]))
    return groups


def _removal_sample(run: SyncRun) -> list[str]:
    """For a held run: some of the members approving it would remove, for the approver."""
    if run.status != SyncRun.Status.HELD:
        return []
    rows = diff.ledger_to_remove(run.sync).order_by("id")[:REMOVAL_SAMPLE]
    return [diff.identity_text(row.id_type, row.alias_label, row.value) for row in rows]


@role_required(VIEW)
def run_detail(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    run = run_of_sync(pk, run_pk)
    context = {
        "sync": run.sync,
        "run": run,
        "progress": _progress(run),
        "duration": duration_between(run.started_at, run.finished_at),
        "error_groups": _error_groups(run),
        "reasons_shown": ERROR_REASONS_SHOWN,
        "removal_sample": _removal_sample(run),
    }
    return render(request, "syncs/syncs/run_detail.html", context)


@role_required(VIEW)
def run_progress(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    run = run_of_sync(pk, run_pk)
    context = {"run": run, "progress": _progress(run)}
    return render(request, "syncs/syncs/_run_progress.html", context)
