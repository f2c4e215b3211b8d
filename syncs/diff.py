"""What a sync must send: the cohort minus the ledger (to add), the ledger minus the cohort (to
remove). Computed in SQL, a keyset page at a time, never the whole cohort in memory."""

from typing import Any

from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.expressions import RawSQL

from connections.partners.base import Recipient
from syncs.models import EXTRA_IDENTIFIERS, CohortMember, IdType, Sync, SyncedMember

PRIMARY_TYPES = {choice.value for choice in IdType}


class _ProbedExists(Exists):
    """EXISTS that PostgreSQL answers with one unique-index probe per row, whatever its statistics.

    PostgreSQL turns a NOT EXISTS into an anti join planned from the table's statistics. During
    a first sync the ledger grows from nothing, so it looks nearly empty to the planner, which
    then reads the sync's whole ledger again for every LIMITed page: 50,000 members took 125 s.
    An OFFSET in the subquery keeps it a per-row subplan on the unique index, so a page costs
    what it scans. Only the pages use it: a whole-diff count is best as the hash join.
    """

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        sql, params = self.as_sql(compiler, connection, **extra)
        return f"{sql[:-1]} OFFSET 0)", params


def _hidden(value: int, hide: bool) -> Any:
    """`(SELECT value)` when `hide`: an id the planner cannot see. For a sync whose ledger grew
    since the last ANALYZE its statistics say "one row", and it probed through the (sync, id)
    index, reading the whole ledger for each member; an unseen id gets the average instead."""
    return RawSQL("SELECT %s", (value,)) if hide else value


def _in_ledger(sync: Sync, *, probed: bool = False) -> Exists:
    return (_ProbedExists if probed else Exists)(
        SyncedMember.objects.filter(
            sync_id=_hidden(sync.pk, probed),
            id_type=OuterRef("id_type"),
            alias_label=OuterRef("alias_label"),
            value=OuterRef("value"),
        )
    )


def _in_cohort(sync: Sync, *, probed: bool = False) -> Exists:
    return (_ProbedExists if probed else Exists)(
        CohortMember.objects.filter(
            cohort_id=_hidden(sync.cohort_id, probed),
            id_type=OuterRef("id_type"),
            alias_label=OuterRef("alias_label"),
            value=OuterRef("value"),
        )
    )


def members_to_add(
    sync: Sync, *, everyone: bool = False, probed: bool = False
) -> QuerySet[CohortMember]:
    """The cohort minus the ledger; `everyone` (a full resync) re-sends the whole cohort."""
    members = CohortMember.objects.filter(cohort_id=sync.cohort_id)
    return members if everyone else members.filter(~_in_ledger(sync, probed=probed))


def ledger_to_remove(
    sync: Sync, *, everything: bool = False, probed: bool = False
) -> QuerySet[SyncedMember]:
    """The ledger minus the cohort; `everything` (a cleanup run) is the whole ledger."""
    ledger = SyncedMember.objects.filter(sync_id=sync.pk)
    return ledger if everything else ledger.filter(~_in_cohort(sync, probed=probed))


def page_to_add(
    sync: Sync, *, after_id: int, until_id: int, limit: int, everyone: bool = False
) -> list[CohortMember]:
    members = members_to_add(sync, everyone=everyone, probed=True)
    return list(members.filter(id__gt=after_id, id__lte=until_id).order_by("id")[:limit])


def page_to_remove(
    sync: Sync, *, after_id: int, until_id: int, limit: int, everything: bool = False
) -> list[SyncedMember]:
    rows = ledger_to_remove(sync, everything=everything, probed=True).filter(
        id__gt=after_id, id__lte=until_id
    )
    return list(rows.order_by("id")[:limit])


def recipient_for(member: CohortMember, mapping: list[str]) -> Recipient | None:
    """The first identifier in the mapping's order that this member has, or None (skipped)."""
    for choice in mapping:
        if choice in PRIMARY_TYPES:
            if member.id_type == choice:
                label = member.alias_label if choice == IdType.USER_ALIAS else ""
                return Recipient(member.pk, choice, member.value, label)
        elif choice in EXTRA_IDENTIFIERS:
            value = getattr(member, choice)
            if value:
                return Recipient(member.pk, choice, value)
    return None


def identity_text(id_type: str, alias_label: str, value: str) -> str:
    return f"{alias_label}:{value}" if id_type == IdType.USER_ALIAS else f"{id_type}:{value}"
