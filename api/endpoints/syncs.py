"""Syncs: every role reads; marketers and admins create, change, pause, resume and delete.

Each write calls the service the dashboard calls, so both refuse the same input the same way.
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Query, Router, Status

from api.access import get_or_404
from api.auth import TokenAuth, actor
from api.pagination import PageQuery, page_of
from api.schemas import Id, Message, Page, SyncCreateIn, SyncOut, SyncUpdateIn
from cohorts.models import Cohort
from connections.models import Connection
from core.audit import client_ip
from syncs.lifecycle import delete_sync as delete_sync_service
from syncs.lifecycle import pause_sync as pause_sync_service
from syncs.lifecycle import resume_sync as resume_sync_service
from syncs.models import Sync
from syncs.services import create_sync as create_sync_service
from syncs.services import update_sync as update_sync_service

VIEW = "syncs.view_sync"
MANAGE = "syncs.manage_syncs"

router = Router(tags=["syncs"])


def _syncs() -> "QuerySet[Sync]":
    return Sync.objects.select_related("cohort", "connection")


def _sync(sync_id: int) -> Sync:
    return get_or_404(_syncs(), sync_id, "sync")


@router.get("/syncs", response=Page[SyncOut], auth=TokenAuth(VIEW))
def list_syncs(request: HttpRequest, page: Query[PageQuery]) -> dict[str, Any]:
    """Syncs by name, each with its latest run's outcome."""
    return page_of(_syncs(), page)


@router.post("/syncs", response={201: SyncOut, 400: Message}, auth=TokenAuth(MANAGE))
def create_sync(request: HttpRequest, payload: SyncCreateIn) -> Status[Sync]:
    """Create a sync of a cohort to a destination connection. `cadence` is one of
    `{"kind": "once"}`, `{"kind": "realtime"}`, `{"kind": "hourly", "minute": 17}` or
    `{"kind": "daily", "time_of_day": "09:00", "timezone": "Europe/Paris"}`. A sync that would
    make more cohorts share its connection's array attribute than the connection's array cap is
    refused on `options` (boolean membership is the way out). A trait sync (`kind` "traits",
    Braze only) sends `traits`, member properties, as custom attributes by external ID."""
    user = actor(request)
    cohort = Cohort.objects.filter(pk=payload.cohort_id).first()
    connection = Connection.objects.filter(pk=payload.connection_id).first()
    if cohort is None:
        raise ValidationError({"cohort_id": f"No cohort has the id {payload.cohort_id}."})
    if connection is None:
        raise ValidationError(
            {"connection_id": f"No connection has the id {payload.connection_id}."}
        )
    sync = create_sync_service(
        name=payload.name,
        cohort=cohort,
        connection=connection,
        identifier_mapping=payload.identifier_mapping,
        cadence=payload.cadence,
        leaving_members=payload.leaving_members,
        mass_removal_threshold_pct=payload.mass_removal_threshold_pct,
        options=payload.options,
        verify=payload.verify,
        verify_sample_size=payload.verify_sample_size,
        kind=payload.kind,
        traits=payload.traits,
        traits_send_nulls=payload.traits_send_nulls,
        actor=user,
        ip=client_ip(request),
    )
    return Status(201, _sync(sync.pk))


@router.get("/syncs/{sync_id}", response=SyncOut, auth=TokenAuth(VIEW))
def get_sync(request: HttpRequest, sync_id: Id) -> Sync:
    return _sync(sync_id)


@router.patch("/syncs/{sync_id}", response={200: SyncOut, 400: Message}, auth=TokenAuth(MANAGE))
def update_sync(request: HttpRequest, sync_id: Id, payload: SyncUpdateIn) -> Sync:
    """Change the fields sent; the others stay. A new identifier mapping applies to members sent
    from now on."""
    user = actor(request)
    sync = _sync(sync_id)
    changes = payload.model_dump(exclude_unset=True)
    update_sync_service(sync=sync, actor=user, ip=client_ip(request), **changes)
    return _sync(sync_id)


@router.post(
    "/syncs/{sync_id}/pause", response={200: SyncOut, 400: Message}, auth=TokenAuth(MANAGE)
)
def pause_sync(request: HttpRequest, sync_id: Id) -> Sync:
    """Take an active sync out of its schedule; a run already queued or running goes on. A run
    asked for (POST /syncs/{sync_id}/runs, or Run now) still runs it once, and it stays paused."""
    user = actor(request)
    pause_sync_service(sync=_sync(sync_id), actor=user, ip=client_ip(request))
    return _sync(sync_id)


@router.post(
    "/syncs/{sync_id}/resume", response={200: SyncOut, 400: Message}, auth=TokenAuth(MANAGE)
)
def resume_sync(request: HttpRequest, sync_id: Id) -> Sync:
    """Put a paused sync back on its schedule, from now on (missed slots are not caught up)."""
    user = actor(request)
    resume_sync_service(sync=_sync(sync_id), actor=user, ip=client_ip(request))
    return _sync(sync_id)


@router.delete("/syncs/{sync_id}", response={204: None, 400: Message}, auth=TokenAuth(MANAGE))
def delete_sync(request: HttpRequest, sync_id: Id) -> Status[None]:
    """Delete the sync with its run history and ledger; refused while a run is queued or
    running. What it put into the destination stays there."""
    user = actor(request)
    delete_sync_service(sync=_sync(sync_id), actor=user, ip=client_ip(request))
    return Status(204, None)
