"""Deleting a connection that syncs use: either leave what they put in the destination, or
remove it first with a cleanup run per sync (driven by the ledger), then delete.

Syncs depend on their connection, so this lives in syncs; connections.services.delete_connection
deletes a connection once nothing uses it.
"""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from connections.models import Connection
from connections.services import delete_connection
from core import audit
from syncs.models import Sync, SyncedMember, SyncRun
from syncs.services import start_run

LEAVE = "leave"
REMOVE = "remove"


@dataclass(frozen=True)
class SyncInDestination:
    sync: Sync
    members: int  # what the ledger says this sync sent to the destination
    # Of those, sent by runs whose adds the partner may have skipped (SyncRun.adds_applied):
    # Braze with "update existing only" accepts an add for an unknown profile and drops it, so
    # these are "sent", not "in the destination" (invariant 8 in docs/architecture.md).
    sent_only: int
    cleanup: SyncRun | None  # its latest cleanup run, if any

    @property
    def applied(self) -> int:
        return self.members - self.sent_only


def syncs_in_destination(connection: Connection) -> list[SyncInDestination]:
    """The connection's syncs with what each has in the destination; three queries."""
    syncs = list(
        Sync.objects.filter(connection=connection)
        .select_related("cohort")
        .annotate(
            members=Count("ledger"),
            # A ledger row whose run is gone counts as applied, as in the member lookup.
            sent_only=Count("ledger", filter=Q(ledger__run__adds_applied=False)),
        )
        .order_by("name", "id")
    )
    latest: dict[int, SyncRun] = {}
    for run in SyncRun.objects.filter(
        sync__connection=connection, trigger=SyncRun.Trigger.CLEANUP
    ).order_by("queued_at", "id"):
        latest[run.sync_id] = run
    return [
        SyncInDestination(sync, sync.members, sync.sent_only, latest.get(sync.pk)) for sync in syncs
    ]


def removal_under_way(connection: Connection) -> bool:
    """Whether a run of the connection's syncs is queued or running: the deletion waits for it."""
    return SyncRun.objects.filter(sync__connection=connection, status__in=SyncRun.ACTIVE).exists()


def remove_connection(
    *, connection: Connection, cleanup: str, actor: User | None, ip: str | None = None
) -> bool:
    """Delete the connection and its syncs, leaving or first removing their members.

    Returns True when the connection is deleted now, False when cleanup runs were started;
    the last of them to finish deletes it (complete_connection_removal).
    """
    if cleanup not in (LEAVE, REMOVE):
        raise ValidationError("Choose whether to leave or remove the members.")
    active = SyncRun.objects.filter(sync__connection=connection, status__in=SyncRun.ACTIVE)
    if cleanup == LEAVE and active.exists():
        names = ", ".join(sorted({run.sync.name for run in active.select_related("sync")}))
        raise ValidationError(f"Runs are in progress ({names}): cancel them or wait for them.")
    to_clean = [
        sync
        for sync in Sync.objects.filter(connection=connection).filter(
            Exists(SyncedMember.objects.filter(sync_id=OuterRef("pk")))
        )
        if cleanup == REMOVE
    ]
    if not to_clean and not active.exists():
        _delete_with_syncs(connection, actor=actor, ip=ip, left_members=cleanup == LEAVE)
        return True
    with transaction.atomic():
        Connection.objects.filter(pk=connection.pk).update(
            deletion_requested_at=timezone.now(), deletion_requested_by=actor
        )
        # No new scheduled or real-time runs while the destination is emptied.
        Sync.objects.filter(connection=connection).exclude(status=Sync.Status.PAUSED).update(
            status=Sync.Status.PAUSED
        )
        audit.record(
            actor=actor,
            action="connection.deletion_requested",
            target=connection,
            details={"cleanup": cleanup, "syncs": [sync.name for sync in to_clean]},
            ip=ip,
        )
    for sync in to_clean:
        start_run(sync=sync, trigger=SyncRun.Trigger.CLEANUP, actor=actor, ip=ip)
    return complete_connection_removal(connection.pk)


def on_run_finished(sender: Any, run_id: int, **kwargs: Any) -> None:
    """The last cleanup run to finish deletes the connection (and with it that run)."""
    connection_id = (
        SyncRun.objects.filter(pk=run_id, trigger=SyncRun.Trigger.CLEANUP)
        .values_list("sync__connection_id", flat=True)
        .first()
    )
    if connection_id is not None:
        complete_connection_removal(connection_id)


def complete_connection_removal(connection_id: int) -> bool:
    """Delete a connection whose deletion was asked for once its syncs hold nothing more in
    the destination and no run is going. A failed cleanup leaves it for someone to decide."""
    connection = Connection.objects.filter(
        pk=connection_id, deletion_requested_at__isnull=False
    ).first()
    if connection is None:
        return False
    syncs = Sync.objects.filter(connection=connection)
    if SyncRun.objects.filter(sync__in=syncs, status__in=SyncRun.ACTIVE).exists():
        return False
    if SyncedMember.objects.filter(sync__in=syncs).exists():
        return False
    _delete_with_syncs(connection, actor=None, ip=None, left_members=False)
    return True


def cancel_connection_removal(
    *, connection: Connection, actor: User | None, ip: str | None = None
) -> None:
    """Keep the connection after all; its syncs stay paused until someone resumes them."""
    with transaction.atomic():
        if not Connection.objects.filter(
            pk=connection.pk, deletion_requested_at__isnull=False
        ).update(deletion_requested_at=None, deletion_requested_by=None):
            raise ValidationError("This connection is not being deleted.")
        audit.record(actor=actor, action="connection.deletion_canceled", target=connection, ip=ip)


def _delete_with_syncs(
    connection: Connection, *, actor: User | None, ip: str | None, left_members: bool
) -> None:
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        for sync in Sync.objects.filter(connection=locked).annotate(members=Count("ledger")):
            audit.record(
                actor=actor,
                action="sync.deleted",
                target=sync,
                details={
                    "with_connection": locked.name,
                    "left_in_destination": sync.members if left_members else 0,
                },
                ip=ip,
            )
            sync.delete()
        delete_connection(connection=locked, actor=actor, ip=ip)
