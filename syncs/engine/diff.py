"""What a sync must send: the cohort minus the ledger (to add), the ledger minus the cohort (to
remove). Computed in SQL once per run into the run's plan (SyncRunPlanItem), then read a keyset
page at a time, never the whole cohort in memory."""

import functools
from collections.abc import Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.expressions import RawSQL

from cohorts.models import EXTRA_IDENTIFIERS, CohortMember, IdType
from connections.partners.base import Recipient
from syncs.engine.ledger import LedgerRow
from syncs.models import Sync, SyncedMember, SyncRun, SyncRunPlanItem

PRIMARY_TYPES = {choice.value for choice in IdType}
R = TypeVar("R")
# A plan this big gets fresh statistics right away (see write_plan); ANALYZE samples at most
# 30,000 rows, a fraction of a second.
ANALYZE_PLANS_OF = 10_000


class _ProbedExists(Exists):
    """EXISTS that PostgreSQL answers with one unique-index probe per row, whatever its statistics.

    PostgreSQL turns a NOT EXISTS into an anti join planned from the table's statistics. During
    a first sync the ledger grows from nothing, so it looks nearly empty to the planner, which
    then reads the sync's whole ledger again for every LIMITed page: 50,000 members took 125 s.
    An OFFSET in the subquery keeps it a per-row subplan on the unique index, so a page costs
    what it scans. Only the removal pages use it (a member who came back since the plan); the
    plan itself, a whole diff, is best as the hash join.
    """

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        sql, params = self.as_sql(compiler, connection, **extra)
        return f"{sql[:-1]} OFFSET 0)", params


def _hidden(value: int, hide: bool) -> Any:
    """`(SELECT value)` when `hide`: an id the planner cannot see. For a sync whose ledger grew
    since the last ANALYZE its statistics say "one row", and it probed through the (sync, id)
    index, reading the whole ledger for each member; an unseen id gets the average instead."""
    return RawSQL("SELECT %s", (value,)) if hide else value


def _in_ledger(sync: Sync) -> Exists:
    return Exists(
        SyncedMember.objects.filter(
            sync_id=sync.pk,
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


def members_to_add(sync: Sync, *, everyone: bool = False) -> QuerySet[CohortMember]:
    """The cohort minus the ledger; `everyone` (a full resync) re-sends the whole cohort."""
    members = CohortMember.objects.filter(cohort_id=sync.cohort_id)
    return members if everyone else members.filter(~_in_ledger(sync))


def ledger_to_remove(sync: Sync, *, everything: bool = False) -> QuerySet[SyncedMember]:
    """The ledger minus the cohort; `everything` (a cleanup run) is the whole ledger."""
    ledger = SyncedMember.objects.filter(sync_id=sync.pk)
    return ledger if everything else ledger.filter(~_in_cohort(sync))


def write_plan(run_id: int, op: int, rows: QuerySet[Any]) -> int:
    """Store `rows` (their ids) as the run's plan for `op`, in one INSERT ... SELECT; returns how
    many. The database plans the whole diff as one anti join (a hash join on PostgreSQL), and
    the rows never pass through Python."""
    select, params = rows.order_by().values("id").query.sql_with_params()
    table = connection.ops.quote_name(SyncRunPlanItem._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (run_id, op, ref_id) "  # noqa: S608 (names from the models)
            f"SELECT %s, %s, planned.id FROM ({select}) planned",
            [run_id, op, *params],
        )
        written = max(cursor.rowcount, 0)
        if connection.vendor == "postgresql" and written >= ANALYZE_PLANS_OF:
            # Without statistics for the rows just written PostgreSQL reads every planned id
            # after the cursor and sorts them for each page (a bitmap scan, not the ordered
            # index): a 1,000,000-member plan spent 74 s in pages instead of a few.
            cursor.execute(f"ANALYZE {table}")
        return written


class Page(NamedTuple, Generic[R]):
    """The rows of one page of the plan that still exist, and the last planned id it covered
    (the next page starts after it, whether or not that row was found)."""

    rows: list[R]
    last_ref: int


def _planned_refs(run_id: int, op: int, after_id: int, limit: int) -> list[int]:
    return list(
        SyncRunPlanItem.objects.filter(run_id=run_id, op=op, ref_id__gt=after_id)
        .order_by("ref_id")
        .values_list("ref_id", flat=True)[:limit]
    )


class PlannedMember(NamedTuple):
    """A member as a run sends it: its id, its identity, and the identifier it is sent by (the
    first of the sync's mapping it has, as recipient_for chooses it; None for a member with
    none of them). Its fields after the id are its ledger row once the partner accepts it."""

    pk: int
    id_type: str
    alias_label: str
    value: str
    dest_type: str | None
    dest_value: str  # "" when dest_type is None, as dest_label
    dest_label: str


assert PlannedMember._fields[1:] == LedgerRow._fields, "a planned member ends with its ledger row"


def page_to_add(
    sync: Sync,
    *,
    mapping: Sequence[str],
    run_id: int,
    after_id: int,
    limit: int,
    until: int | None = None,
) -> Page[PlannedMember] | None:
    """The next planned members after `after_id`, each with the identifier of `mapping` it is
    sent by; None once the plan is done. A member who left the cohort since the plan is not
    found (the run counts it as skipped at the end). `until`: the run adds the whole cohort up
    to that member id (SyncRun.adds_whole_cohort), so its pages read the cohort itself,
    without a stored plan.

    One query, rows as plain tuples: the plan's next ids joined to the cohort, the identifier
    chosen in SQL. Model instances and a thousand-id IN list bound in Python were a third of a
    full sync's time; choosing the identifier in Python cost 418 ns a member more.
    """
    with connection.cursor() as cursor:
        if until is None:
            cursor.execute(
                _page_to_add_sql(tuple(mapping)),
                [run_id, SyncRunPlanItem.Op.ADD, after_id, limit, sync.cohort_id, after_id],
            )
        else:
            cursor.execute(
                _cohort_page_sql(tuple(mapping)), [sync.cohort_id, after_id, until, limit]
            )
        rows = cursor.fetchall()
    if not rows:
        return None
    # _make: a tuple as it is, where PlannedMember(*row) binds seven arguments.
    found = [PlannedMember._make(row[1:]) for row in rows if row[1] is not None]
    return Page(found, rows[-1][0])


def whole_cohort_until(run: SyncRun) -> int | None:
    """The `until` of the run's pages: its last member when it adds the whole cohort."""
    return run.add_until if run.adds_whole_cohort else None


def _sent_by(mapping: tuple[str, ...]) -> str:
    """recipient_for in SQL, over the cohort member `m`: the identifier type, value and label
    a member is sent by, three CASEs over the mapping's identifiers in order (NULL, '', '' for
    a member with none of them). The names are inlined: each is a primary type or an extra
    identifier's column, nothing else is taken."""
    types, values, labels = [], [], []
    for choice in mapping:
        if choice in PRIMARY_TYPES:
            has = f"m.id_type = '{choice}'"
            value, label = "m.value", "m.alias_label" if choice == IdType.USER_ALIAS else "''"
        elif choice in EXTRA_IDENTIFIERS:
            # As Python reads it: a value that is neither NULL nor empty.
            has, value, label = f"m.{choice} <> ''", f"m.{choice}", "''"
        else:
            continue  # recipient_for skips a name it does not know
        types.append(f"WHEN {has} THEN '{choice}'")
        values.append(f"WHEN {has} THEN {value}")
        labels.append(f"WHEN {has} THEN {label}")
    if not types:
        return "NULL, '', ''"
    return (
        f"CASE {' '.join(types)} END, "
        f"CASE {' '.join(values)} ELSE '' END, CASE {' '.join(labels)} ELSE '' END"
    )


@functools.lru_cache(maxsize=64)
def _page_to_add_sql(mapping: tuple[str, ...]) -> str:
    # The join is bounded to the page's own id range as well: without it PostgreSQL hashed
    # the whole cohort for each page (a sequential scan, 22 ms a page at 100,000 members, so
    # a full sync's pages grew with the square of its size); with it, it reads the range off
    # the primary key.
    return (
        "WITH p AS ("  # noqa: S608 (names from the models and the mapping's known identifiers)
        f"SELECT ref_id FROM {SyncRunPlanItem._meta.db_table} "
        "WHERE run_id = %s AND op = %s AND ref_id > %s ORDER BY ref_id LIMIT %s) "
        f"SELECT p.ref_id, {_MEMBER_COLUMNS}, {_sent_by(mapping)} FROM p "
        f"LEFT JOIN {CohortMember._meta.db_table} m ON m.id = p.ref_id AND m.cohort_id = %s "
        "AND m.id > %s AND m.id <= (SELECT MAX(ref_id) FROM p) "
        "ORDER BY p.ref_id"
    )


@functools.lru_cache(maxsize=64)
def _cohort_page_sql(mapping: tuple[str, ...]) -> str:
    """The same rows read straight off the cohort's (cohort, id) index, for a whole-cohort
    plan."""
    return (
        f"SELECT m.id, {_MEMBER_COLUMNS}, {_sent_by(mapping)} "  # noqa: S608 (as above)
        f"FROM {CohortMember._meta.db_table} m "
        "WHERE m.cohort_id = %s AND m.id > %s AND m.id <= %s ORDER BY m.id LIMIT %s"
    )


# A planned member's own columns, as the page queries select them.
_MEMBER_COLUMNS = "m.id, m.id_type, m.alias_label, m.value"


def page_to_remove(
    sync: Sync, *, run_id: int, after_id: int, limit: int, everything: bool = False
) -> Page[SyncedMember] | None:
    """The next planned ledger rows after `after_id`; None once the plan is done. A row that is
    gone, or whose member came back to the cohort since the plan, is not returned."""
    refs = _planned_refs(run_id, SyncRunPlanItem.Op.REMOVE, after_id, limit)
    if not refs:
        return None
    rows = SyncedMember.objects.filter(sync_id=sync.pk, id__in=refs)
    if not everything:
        # Probed per row: only the page's few planned removals, not the whole ledger.
        rows = rows.filter(~_in_cohort(sync, probed=True))
    return Page(list(rows.order_by("id")), refs[-1])


def recipient_for(member: CohortMember | PlannedMember, mapping: list[str]) -> Recipient | None:
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
