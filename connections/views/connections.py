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
from connections.partners.base import Direction
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
    try:
        config = connection.get_config().to_dict()
        config_error = ""
    except ValueError as exc:
        config, config_error = connection.config, str(exc)
    return render(
        request,
        "connections/detail.html",
        {
            "connection": connection,
            "config": [
                (key.replace("_", " ").capitalize(), value) for key, value in config.items()
            ],
            "config_error": config_error,
            "latest_check": connection.checks.first(),
        },
    )


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
    messages.info(request, "Connection test queued; the outcome appears below.")
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
        request, "connections/_check.html", {"connection": connection, "check": check}
    )
    if check.is_finished:
        # Tell the page to refresh the connection's state badge as well.
        response["HX-Trigger"] = "connection-checked"
    return response
