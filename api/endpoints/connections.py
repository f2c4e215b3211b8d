"""Connections: every role reads them (the credential shows only masked); admins create,
change, test and delete them, as on the dashboard.

Input goes through the dashboard's own connection form (connections.forms), and each change
through the service the pages call, so both refuse the same input and write the same audit
entries. Credentials are write-only: answers carry only their masked end.
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Status

from api.access import get_or_404
from api.auth import TokenAuth, actor
from api.pagination import PageQuery, page_of
from api.schemas import (
    ConnectionCheckOut,
    ConnectionCheckQueuedOut,
    ConnectionCreateIn,
    ConnectionOut,
    ConnectionRemovalOut,
    ConnectionUpdateIn,
    Id,
    Message,
    Page,
)
from connections import services
from connections.forms import ConnectionForm, connection_form_for, form_errors
from connections.models import Connection, ConnectionCheck
from connections.partners import PARTNERS
from connections.partners.base import PartnerConfig
from core.audit import client_ip
from syncs import connection_removal as removal
from syncs.models import SyncRun

VIEW = "connections.view_connection"
MANAGE = "connections.manage_connections"

router = Router(tags=["connections"])


@router.get(
    "/connections",
    response=Page[ConnectionOut],
    auth=TokenAuth(VIEW),
)
def list_connections(request: HttpRequest, page: Query[PageQuery]) -> dict[str, Any]:
    return page_of(Connection.objects.all(), page)


@router.get(
    "/connections/{connection_id}",
    response=ConnectionOut,
    auth=TokenAuth(VIEW),
)
def get_connection(request: HttpRequest, connection_id: Id) -> Connection:
    return get_or_404(Connection.objects.all(), connection_id, "connection")


def _checked(form: ConnectionForm) -> PartnerConfig:
    if not form.is_valid():
        raise form_errors(form)
    assert form.config is not None
    return form.config


@router.post("/connections", response={201: ConnectionOut, 400: Message}, auth=TokenAuth(MANAGE))
def create_connection(request: HttpRequest, payload: ConnectionCreateIn) -> Status[Connection]:
    """Add a connection, as an admin does on the dashboard; test it next
    (POST /connections/{connection_id}/test)."""
    if payload.kind not in PARTNERS:
        raise ValidationError({"kind": f"Choose one of: {', '.join(PARTNERS)}."})
    form = connection_form_for(
        payload.kind, name=payload.name, config=payload.config, credentials=payload.credentials
    )
    config = _checked(form)
    try:
        connection = services.create_connection(
            kind=payload.kind,
            name=form.cleaned_data["name"],
            config=config,
            secret=form.cleaned_data["secret"],
            actor=actor(request),
            ip=client_ip(request),
        )
    except services.ConnectionConflict as exc:
        raise ValidationError(str(exc)) from None
    return Status(201, connection)


@router.patch(
    "/connections/{connection_id}",
    response={200: ConnectionOut, 400: Message},
    auth=TokenAuth(MANAGE),
)
def update_connection(
    request: HttpRequest, connection_id: Id, payload: ConnectionUpdateIn
) -> Connection:
    """Change what is sent. A new credential makes the connection untested until its next
    test."""
    connection = get_or_404(Connection.objects.all(), connection_id, "connection")
    form = connection_form_for(
        connection.kind,
        name=payload.name,
        config=payload.config or {},
        credentials=payload.credentials or {},
        instance=connection,
    )
    config = _checked(form)
    try:
        return services.update_connection(
            connection=connection,
            name=form.cleaned_data["name"],
            config=config,
            secret=form.cleaned_data["secret"] or None,
            actor=actor(request),
            ip=client_ip(request),
        )
    except services.ConnectionConflict as exc:
        raise ValidationError(str(exc)) from None


@router.post(
    "/connections/{connection_id}/test",
    response={202: ConnectionCheckQueuedOut},
    auth=TokenAuth(MANAGE),
)
def test_connection(
    request: HttpRequest, response: HttpResponse, connection_id: Id
) -> Status[dict[str, Any]]:
    """Queue the dashboard's "Test connection": a worker calls the partner with the stored
    credential. Read the check at `poll` (also the Location header) until it is finished."""
    connection = get_or_404(Connection.objects.all(), connection_id, "connection")
    check = services.request_connection_check(
        connection=connection, actor=actor(request), ip=client_ip(request)
    )
    poll = f"/api/v1/connections/{connection.pk}/checks/{check.pk}"
    response["Location"] = poll
    return Status(202, {"check": check, "poll": poll})


@router.get(
    "/connections/{connection_id}/checks/{check_id}",
    response=ConnectionCheckOut,
    auth=TokenAuth(VIEW),
)
def get_connection_check(request: HttpRequest, connection_id: Id, check_id: Id) -> ConnectionCheck:
    get_or_404(Connection.objects.only("id"), connection_id, "connection")
    return get_or_404(
        ConnectionCheck.objects.filter(connection_id=connection_id),
        check_id,
        "check of this connection",
    )


@router.delete(
    "/connections/{connection_id}",
    response={202: ConnectionRemovalOut, 204: None, 400: Message},
    auth=TokenAuth(MANAGE),
)
def delete_connection(request: HttpRequest, connection_id: Id, cleanup: str = "") -> Status[Any]:
    """Delete the connection and its syncs, as the dashboard does. A connection with syncs
    needs `cleanup`: `leave` what they sent in the destination (deleted now, 204), or `remove`
    it first: 202, with the cleanup run of each sync that sent members; the connection is
    deleted once they finish (its syncs are paused meanwhile)."""
    connection = get_or_404(Connection.objects.all(), connection_id, "connection")
    if not cleanup and removal.syncs_in_destination(connection):
        raise ValidationError(
            {
                "cleanup": "This connection has syncs: choose `leave` (their members stay in "
                "the destination) or `remove` (removed first, then the connection is deleted)."
            }
        )
    deleted = removal.remove_connection(
        connection=connection,
        cleanup=cleanup or removal.LEAVE,
        actor=actor(request),
        ip=client_ip(request),
    )
    if deleted:
        return Status(204, None)
    runs = SyncRun.objects.filter(
        sync__connection_id=connection_id,
        trigger=SyncRun.Trigger.CLEANUP,
        status__in=SyncRun.ACTIVE,
    ).order_by("id")
    cleanup_runs = [{"sync_id": run.sync_id, "run_id": run.pk} for run in runs]
    return Status(
        202,
        {
            "deleted": False,
            "message": f"Removing what {len(cleanup_runs)} sync(s) sent to the destination; "
            "the connection is deleted once their cleanup runs finish.",
            "cleanup_runs": cleanup_runs,
        },
    )
