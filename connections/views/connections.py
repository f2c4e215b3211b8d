"""Connection pages: any role reads; admins add, edit, delete and test."""

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from connections import services
from connections.forms import ConnectionForm
from connections.models import Connection, ConnectionCheck
from connections.partners import PARTNERS
from connections.partners.base import Direction, describe_settings
from core.audit import client_ip
from core.roles import role_required

VIEW = "connections.view_connection"
MANAGE = "connections.manage_connections"


@role_required(VIEW)
def connection_list(request: HttpRequest) -> HttpResponse:
    connections = Connection.objects.all()
    return render(request, "connections/list.html", {"connections": connections})


@role_required(VIEW)
def connection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(Connection, pk=pk)
    partner = connection.partner
    try:
        config = partner.config_facts(connection.get_config())
        config_error = ""
    except ValueError as exc:  # shown as stored, for an admin to fix
        config = describe_settings(connection.config, partner.config_form())
        config_error = str(exc)
    return render(
        request,
        "connections/detail.html",
        {
            "connection": connection,
            "config": config,
            "config_error": config_error,
            "latest_check": _current_check(connection),
        },
    )


def _current_check(connection: Connection) -> ConnectionCheck | None:
    """The latest check, unless it judged a credential since replaced: a check that accepted or
    refused the key sets the state, so one under "Not tested yet" was of the key before."""
    check = connection.checks.first()
    judged = (ConnectionCheck.Status.OK, ConnectionCheck.Status.REFUSED)
    if check and check.status in judged and connection.state == Connection.State.UNTESTED:
        return None
    return check


@role_required(MANAGE)
def connection_create(request: HttpRequest) -> HttpResponse:
    kind = request.GET.get("kind") or request.POST.get("kind")
    if kind not in PARTNERS:
        return render(request, "connections/choose_kind.html", _partners_by_direction())
    form = ConnectionForm(request.POST or None, kind=kind)
    if request.method == "POST" and form.is_valid():
        assert form.config is not None
        try:
            connection = services.create_connection(
                kind=kind,
                name=form.cleaned_data["name"],
                config=form.config,
                secret=form.cleaned_data["secret"],
                actor=request.user,  # type: ignore[arg-type]
                ip=client_ip(request),
            )
        except services.ConnectionConflict as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Connection {connection.name} added. Test it next.")
            return redirect("connections:detail", pk=connection.pk)
    return render(
        request,
        "connections/form.html",
        {"form": form, "partner": PARTNERS[kind], "kind": kind, "connection": None},
    )


def _partners_by_direction() -> dict[str, list[Any]]:
    """The "choose a partner" page's two lists: a partner that is both is in both."""
    return {
        name: [p for p in PARTNERS.values() if direction in p.directions]
        for name, direction in (
            ("destinations", Direction.DESTINATION),
            ("sources", Direction.SOURCE),
        )
    }


@role_required(MANAGE)
def connection_edit(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(Connection, pk=pk)
    form = ConnectionForm(request.POST or None, kind=connection.kind, instance=connection)
    if request.method == "POST" and form.is_valid():
        assert form.config is not None
        try:
            services.update_connection(
                connection=connection,
                name=form.cleaned_data["name"],
                config=form.config,
                secret=form.cleaned_data["secret"] or None,
                actor=request.user,  # type: ignore[arg-type]
                ip=client_ip(request),
            )
        except services.ConnectionConflict as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Connection saved.")
            return redirect("connections:detail", pk=connection.pk)
    return render(
        request,
        "connections/form.html",
        {
            "form": form,
            "partner": connection.partner,
            "kind": connection.kind,
            "connection": connection,
        },
    )


@require_POST
@role_required(MANAGE)
def connection_test(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(Connection, pk=pk)
    check = services.request_connection_check(
        connection=connection,
        actor=request.user,  # type: ignore[arg-type]
        ip=client_ip(request),
    )
    if request.htmx:  # type: ignore[attr-defined]
        return _check_fragment(request, connection, check)
    # The page shows the check where it is (queued, then its outcome): no message to outlive it.
    return redirect("connections:detail", pk=connection.pk)


@role_required(VIEW)
def connection_check(request: HttpRequest, pk: int, check_pk: int) -> HttpResponse:
    check = get_object_or_404(ConnectionCheck.objects.select_related("connection"), pk=check_pk)
    if check.connection_id != pk:
        raise Http404("No such check.")
    return _check_fragment(request, check.connection, check)


def _check_fragment(
    request: HttpRequest, connection: Connection, check: ConnectionCheck
) -> HttpResponse:
    response = render(
        request,
        "connections/_check.html",
        {"connection": connection, "check": check, "live": True},
    )
    if check.is_finished:
        # Tell the page to refresh the connection's state badge as well.
        response["HX-Trigger"] = "connection-checked"
    return response
