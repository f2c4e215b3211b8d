"""Sync lifecycle pages: thin POST views over syncs.lifecycle (and two confirmations).

A refusal comes back as a flash message on the page the person came from.
"""

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.audit import client_ip
from core.roles import request_actor, role_required
from syncs.engine.traits import traits_of
from syncs.lifecycle import (
    approve_held_run,
    cancel_run,
    delete_sync,
    full_resync,
    pause_sync,
    reject_held_run,
    resume_sync,
    retry_failed_members,
)
from syncs.models import Sync
from syncs.pages.preview import resync_data_points
from syncs.pages.trait_preview import preview_trait_run
from syncs.views.syncs import MANAGE, run_of_sync


def _refused(request: HttpRequest, exc: ValidationError) -> None:
    messages.error(request, " ".join(exc.messages))


@role_required(MANAGE)
@require_POST
def sync_pause(request: HttpRequest, pk: int) -> HttpResponse:
    sync = get_object_or_404(Sync, pk=pk)
    try:
        pause_sync(sync=sync, actor=request_actor(request), ip=client_ip(request))
    except ValidationError as exc:
        _refused(request, exc)
    else:
        messages.success(
            request,
            f"{sync.name} is paused: the schedule does not run it until you resume it. "
            "Run now still runs it once.",
        )
    return redirect("syncs:sync_detail", pk=sync.pk)


@role_required(MANAGE)
@require_POST
def sync_resume(request: HttpRequest, pk: int) -> HttpResponse:
    sync = get_object_or_404(Sync.objects.select_related("connection"), pk=pk)
    try:
        resume_sync(sync=sync, actor=request_actor(request), ip=client_ip(request))
    except ValidationError as exc:
        _refused(request, exc)
    else:
        messages.success(request, f"{sync.name} is active again.")
    return redirect("syncs:sync_detail", pk=sync.pk)


@role_required(MANAGE)
@require_POST
def run_cancel(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    run = run_of_sync(pk, run_pk)
    try:
        run = cancel_run(run=run, actor=request_actor(request), ip=client_ip(request))
    except ValidationError as exc:
        _refused(request, exc)
    else:
        messages.success(request, f"Run {run.pk} canceled.")
    return redirect("syncs:run_detail", pk=pk, run_pk=run.pk)


@role_required(MANAGE)
@require_POST
def run_approve(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    run = run_of_sync(pk, run_pk)
    try:
        new_run = approve_held_run(run=run, actor=request_actor(request), ip=client_ip(request))
    except ValidationError as exc:
        _refused(request, exc)
        return redirect("syncs:run_detail", pk=pk, run_pk=run.pk)
    messages.success(request, f"Approved: run {new_run.pk} sends it.")
    return redirect("syncs:run_detail", pk=pk, run_pk=new_run.pk)


@role_required(MANAGE)
@require_POST
def run_reject(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    run = run_of_sync(pk, run_pk)
    try:
        reject_held_run(run=run, actor=request_actor(request), ip=client_ip(request))
    except ValidationError as exc:
        _refused(request, exc)
    else:
        messages.success(request, f"Rejected; {run.sync.name} is paused until you resume it.")
    return redirect("syncs:run_detail", pk=pk, run_pk=run.pk)


@role_required(MANAGE)
def sync_resync(request: HttpRequest, pk: int) -> HttpResponse:
    sync = get_object_or_404(Sync.objects.select_related("cohort", "connection"), pk=pk)
    if request.method != "POST":
        context: dict[str, Any] = {"sync": sync}
        try:
            if sync.is_traits:
                context["trait_resync"] = preview_trait_run(
                    cohort_id=sync.cohort_id,
                    connection=sync.connection,
                    traits=traits_of(sync.traits),
                    send_nulls=sync.traits_send_nulls,
                    sync=sync,
                    everything=True,
                )
            else:
                context["data_points"] = resync_data_points(sync)
        except ValueError:
            pass  # the connection's settings are not valid: the run will say so
        return render(request, "syncs/syncs/confirm_resync.html", context)
    try:
        run = full_resync(sync=sync, actor=request_actor(request), ip=client_ip(request))
    except ValidationError as exc:
        _refused(request, exc)
        return redirect("syncs:sync_detail", pk=sync.pk)
    messages.success(request, f"Full resync: run {run.pk} sends every member again.")
    return redirect("syncs:run_detail", pk=sync.pk, run_pk=run.pk)


@role_required(MANAGE)
def sync_delete(request: HttpRequest, pk: int) -> HttpResponse:
    sync = get_object_or_404(Sync.objects.select_related("cohort", "connection"), pk=pk)
    if request.method != "POST":
        return render(request, "syncs/syncs/confirm_delete.html", {"sync": sync})
    try:
        delete_sync(sync=sync, actor=request_actor(request), ip=client_ip(request))
    except ValidationError as exc:
        _refused(request, exc)
        return redirect("syncs:sync_detail", pk=sync.pk)
    messages.success(request, f"Sync {sync.name} deleted.")
    return redirect("syncs:sync_list")


@role_required(MANAGE)
@require_POST
def run_retry_failed(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    run = run_of_sync(pk, run_pk)
    try:
        new_run = retry_failed_members(run=run, actor=request_actor(request), ip=client_ip(request))
    except ValidationError as exc:
        _refused(request, exc)
        return redirect("syncs:run_detail", pk=pk, run_pk=run.pk)
    # The new run's page says what it retries and shows it as it goes: no message to outlive it.
    return redirect("syncs:run_detail", pk=pk, run_pk=new_run.pk)
