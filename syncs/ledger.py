"""Write the ledger after a batch is accepted: one statement for the batch of adds; removals
leave the ledger for the removal history.

On PostgreSQL the rows travel as one array per column through unnest (a handful of parameters
however big the batch); building 75 model instances and a 600-parameter INSERT per batch was
the largest cost of a full sync. Elsewhere, bulk_create.
"""

from collections.abc import Sequence
from typing import NamedTuple

from django.db import connection
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


def record_sent(sync_id: int, run_id: int, rows: Sequence[LedgerRow]) -> None:
    """Add the members the partner accepted; a member already in the ledger stays as it is."""
    if not rows:
        return
    now = timezone.now()
    if connection.vendor != "postgresql":
        SyncedMember.objects.bulk_create(
            [
                SyncedMember(sync_id=sync_id, run_id=run_id, added_at=now, **row._asdict())
                for row in rows
            ],
            ignore_conflicts=True,
        )
        return
    arrays = ", ".join(["%s::text[]"] * len(COLUMNS))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (sync_id, run_id, added_at, {', '.join(COLUMNS)}) "  # noqa: S608
            f"SELECT %s, %s, %s, u.* FROM unnest({arrays}) AS u "
            "ON CONFLICT (sync_id, id_type, alias_label, value) DO NOTHING",
            [
                sync_id,
                run_id,
                now,
                *([getattr(row, name) for row in rows] for name in COLUMNS),
            ],
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
