"""An Amplitude source's cohorts: the list to pull from, the pulls and their last outcome, and
the month's downloads against the quota. Any role reads; marketers and admins pull."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cohorts.models import AmplitudeCohortListing, AmplitudePull
from cohorts.pulls.listing import request_listing
from cohorts.pulls.quota import MONTHLY_DOWNLOADS, usage
from cohorts.pulls.services import change_cadence, create_pull, stop_pull
from connections.models import Connection
from core.audit import client_ip
from core.roles import request_actor, role_required

VIEW = "cohorts.view_cohort"
MANAGE = "cohorts.manage_cohorts"


def _source(pk: int) -> Connection:
    connection = get_object_or_404(Connection, pk=pk)
    if not connection.partner.downloads_cohorts:
        raise Http404("This connection has no cohorts to download.")
    return connection


@role_required(VIEW)
def source_cohorts(request: HttpRequest, connection_pk: int) -> HttpResponse:
    connection = _source(connection_pk)
    pulls = list(AmplitudePull.objects.filter(connection=connection).select_related("cohort"))
    listing = AmplitudeCohortListing.objects.filter(connection=connection).first()
    pulled = {pull.amplitude_cohort_id for pull in pulls}
    offered = [c for c in (listing.cohorts if listing else []) if c["id"] not in pulled]
    return render(
        request,
        "cohorts/pulls/source.html",
        {
            "connection": connection,
            "pulls": pulls,
            "listing": listing,
            "offered": offered,
            "usage": usage(connection.pk),
            "cadences": [
                (value, label, MONTHLY_DOWNLOADS[AmplitudePull.Cadence(value)])
                for value, label in AmplitudePull.Cadence.choices
            ],
        },
    )


@require_POST
@role_required(MANAGE)
def refresh_listing(request: HttpRequest, connection_pk: int) -> HttpResponse:
    listing = request_listing(_source(connection_pk))
    if listing.error:
        messages.error(request, listing.error)
    else:
        messages.success(request, "Reading the project's cohorts; reload in a moment.")
    return redirect("cohorts:source_cohorts", connection_pk=connection_pk)


@require_POST
@role_required(MANAGE)
def pull_create(request: HttpRequest, connection_pk: int) -> HttpResponse:
    connection = _source(connection_pk)
    listing = AmplitudeCohortListing.objects.filter(connection=connection).first()
    wanted = request.POST.get("amplitude_cohort_id", "")
    # Only a cohort from the list the worker read: its name comes from there, not the form.
    picked = next((c for c in (listing.cohorts if listing else []) if c["id"] == wanted), None)
    if picked is None:
        messages.error(request, "Choose a cohort from the source's list (refresh it if needed).")
        return redirect("cohorts:source_cohorts", connection_pk=connection_pk)
    try:
        pull = create_pull(
            connection=connection,
            amplitude_cohort_id=picked["id"],
            name=picked["name"],
            cadence=request.POST.get("cadence", ""),
            actor=request_actor(request),
            ip=client_ip(request),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"{pull.cohort.name} is pulled {pull.get_cadence_display().lower()}; its first "
            "download starts within a minute.",
        )
    return redirect("cohorts:source_cohorts", connection_pk=connection_pk)


@require_POST
@role_required(MANAGE)
def pull_cadence(request: HttpRequest, pk: int) -> HttpResponse:
    pull = get_object_or_404(AmplitudePull, pk=pk)
    try:
        change_cadence(
            pull=pull,
            cadence=request.POST.get("cadence", ""),
            actor=request_actor(request),
            ip=client_ip(request),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{pull.cohort.name} is now pulled {pull.cadence}.")
    return redirect("cohorts:source_cohorts", connection_pk=pull.connection_id)


@require_POST
@role_required(MANAGE)
def pull_stop(request: HttpRequest, pk: int) -> HttpResponse:
    pull = get_object_or_404(AmplitudePull, pk=pk)
    connection_pk, name = pull.connection_id, pull.cohort.name
    stop_pull(pull=pull, actor=request_actor(request), ip=client_ip(request))
    messages.success(request, f"{name} is no longer pulled; it keeps its members.")
    return redirect("cohorts:source_cohorts", connection_pk=connection_pk)
