"""The ledger of what a sync has put into the destination: the members a batch added, and the
removals that take members out of it into the removal history.

On PostgreSQL a batch's ledger rows are written inside the checkpoint's one statement
(syncs/engine/checkpoint.py), from the same LedgerRow fields; these functions serve the checkpoint's
ORM path (SQLite, and batches of removals).
"""

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from django.utils import timezone

from syncs.models import SyncedMember, SyncRemoval

TABLE = SyncedMember._meta.db_table


class LedgerRow(NamedTuple):
    id_type: str
    alias_label: str
    value: str
    dest_type: str
    dest_value: str
    dest_label: str


# The ledger's columns a batch writes, in the order of a LedgerRow's fields.
COLUMNS = LedgerRow._fields


def record_sent(
    sync_id: int, run_id: int, rows: Sequence[LedgerRow], *, at: datetime | None = None
) -> None:
    """Add the members the partner accepted (`at` then, else now); a member already in the
    ledger stays as it is."""
    if not rows:
        return
    added_at = at or timezone.now()
    SyncedMember.objects.bulk_create(
        [
            SyncedMember(sync_id=sync_id, run_id=run_id, added_at=added_at, **row._asdict())
            for row in rows
        ],
        ignore_conflicts=True,
    )


def record_removed(sync_id: int, run_id: int, rows: Sequence[SyncedMember]) -> None:
    """Take the members the partner removed out of the ledger, and keep each removal in the
    history the member lookup reads."""
    if not rows:
        return
    SyncedMember.objects.filter(pk__in=[row.pk for row in rows]).delete()
    SyncRemoval.objects.bulk_create(
        SyncRemoval(
            sync_id=sync_id,
            run_id=run_id,
            id_type=row.id_type,
            alias_label=row.alias_label,
            value=row.value,
        )
        for row in rows
    )
