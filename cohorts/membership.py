"""Set-based membership changes: the one place that adds and removes cohort members.

The inbound API, CSV uploads and the dashboard all go through `apply_changes`, which writes in
bulk (a statement per thousand identities, never one per identity), keeps `member_count` and the
size history right, and announces the change after it commits.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from cohorts.models import EXTRA_IDENTIFIERS, Cohort, CohortMember, CohortSizeSample
from cohorts.signals import cohort_changed

# Identities per statement: keeps every statement under SQLite's 32,766 bound parameters.
STATEMENT_BATCH = 1000


@dataclass(frozen=True)
class Identity:
    """A member's primary identifier, and the extra identifiers it may carry."""

    id_type: str
    value: str
    alias_label: str = ""
    extras: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    # The member's properties as the source gives them (name -> JSON value): they replace the
    # member's whole. None: the source said nothing of them, and the member keeps its own.
    properties: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.id_type, self.alias_label, self.value)


@dataclass
class ChangeCounts:
    added: int = 0
    removed: int = 0
    # Identities that changed nothing: already present when added, absent when removed.
    ignored: int = 0

    def __iadd__(self, other: "ChangeCounts") -> "ChangeCounts":
        self.added += other.added
        self.removed += other.removed
        self.ignored += other.ignored
        return self


def _unique(identities: Iterable[Identity]) -> list[Identity]:
    """Last one wins per identity, sorted so concurrent writers lock rows in the same order."""
    by_key = {identity.key: identity for identity in identities}
    return [by_key[key] for key in sorted(by_key)]


def _chunks(items: Sequence[Identity]) -> Iterable[Sequence[Identity]]:
    for start in range(0, len(items), STATEMENT_BATCH):
        yield items[start : start + STATEMENT_BATCH]


TABLE = CohortMember._meta.db_table
KEY_COLUMNS = ("id_type", "alias_label", "value")
JOIN_ON_KEY = " AND ".join(f"m.{column} = v.{column}" for column in KEY_COLUMNS)


def _source(
    batch: Sequence[Identity], with_extras: bool, with_properties: bool = False
) -> tuple[str, list[Any]]:
    """The batch as a derived table `v` with the key columns (and the extras, and the
    properties as JSON text: NULL where an identity has none).

    PostgreSQL takes one array per column through unnest: a handful of parameters however big
    the batch, so the statement parses fast and its plan does not depend on the batch size.
    SQLite has no arrays: a VALUES list, joined on the unique index below.
    """
    columns = list(KEY_COLUMNS) + (list(EXTRA_IDENTIFIERS) if with_extras else [])
    columns += ["properties"] if with_properties else []
    rows: list[list[str | None]] = []
    for identity in batch:
        row: list[str | None] = [identity.id_type, identity.alias_label, identity.value]
        if with_extras:
            extras = dict(identity.extras)
            row += [extras.get(name) or None for name in EXTRA_IDENTIFIERS]
        if with_properties:
            row.append(None if identity.properties is None else json.dumps(identity.properties))
        rows.append(row)
    if connection.vendor == "postgresql":
        arrays = ", ".join(["%s::text[]"] * len(columns))
        return f"SELECT * FROM unnest({arrays}) AS u({', '.join(columns)})", [
            list(column) for column in zip(*rows, strict=True)
        ]
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    names = ", ".join(f"column{n} AS {name}" for n, name in enumerate(columns, 1))
    return f"SELECT {names} FROM (VALUES {', '.join([placeholders] * len(rows))})", [
        value for values in rows for value in values
    ]


def _count_present(cursor: Any, cohort_id: int, batch: Sequence[Identity]) -> int:
    source, params = _source(batch, with_extras=False)
    cursor.execute(
        f"SELECT COUNT(*) FROM ({source}) v JOIN {TABLE} m ON m.cohort_id = %s AND {JOIN_ON_KEY}",
        [*params, cohort_id],
    )
    return int(cursor.fetchone()[0])


def _insert(cohort_id: int, batch: Sequence[Identity], now: datetime, with_extras: bool) -> int:
    """Insert what is new; returns how many rows were inserted. A known member's extra
    identifiers (`with_extras`) and properties (when an identity of the batch carries some)
    are refreshed."""
    with_properties = any(identity.properties is not None for identity in batch)
    extras = list(EXTRA_IDENTIFIERS) if with_extras else []
    columns = ["cohort_id", "added_at", *KEY_COLUMNS, *extras]
    selected = ["%s", "%s", *(f"v.{name}" for name in (*KEY_COLUMNS, *extras))]
    if with_properties:
        columns.append("properties")
        selected.append(_as_json("v.properties"))
    source, params = _source(batch, with_extras, with_properties)
    conflict = "DO NOTHING"
    # A blank in the file keeps the old extra identifier; an identity without properties keeps
    # the member's, one with properties replaces them whole.
    refreshed = [f"{name} = COALESCE(excluded.{name}, {TABLE}.{name})" for name in extras]
    if with_properties:
        refreshed.append(f"properties = COALESCE(excluded.properties, {TABLE}.properties)")
    if refreshed:
        conflict = "DO UPDATE SET " + ", ".join(refreshed)
        if not with_extras:
            # Properties only (a download read again): rows whose properties are the same are
            # left alone rather than rewritten.
            conflict += (
                f" WHERE excluded.properties IS NOT NULL "
                f"AND {TABLE}.properties {_distinct_from()} excluded.properties"
            )
    # Only names and placeholders are interpolated; values travel as parameters. `WHERE true`
    # keeps SQLite from reading ON CONFLICT as a join constraint.
    sql = (
        f"INSERT INTO {TABLE} ({', '.join(columns)}) "
        f"SELECT {', '.join(selected)} FROM ({source}) v WHERE true "
        f"ON CONFLICT (cohort_id, {', '.join(KEY_COLUMNS)}) {conflict}"
    )
    params = [cohort_id, now, *params]
    with connection.cursor() as cursor:
        if not refreshed:
            cursor.execute(sql + " RETURNING 1", params)
            return len(cursor.fetchall())
        if connection.vendor == "postgresql":
            # xmax is 0 on a freshly inserted row and set on one the conflict clause updated.
            cursor.execute(sql + " RETURNING (xmax = 0)", params)
            return sum(1 for (inserted,) in cursor.fetchall() if inserted)
        existing = _count_present(cursor, cohort_id, batch)
        cursor.execute(sql, params)
        return len(batch) - existing


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


def _as_json(text_column: str) -> str:
    """JSON text (as staged, or as bound) the way the members' properties column takes it."""
    return f"CAST({text_column} AS jsonb)" if _postgresql() else text_column


def _distinct_from() -> str:
    """SQL for "differs", where a NULL differs from a value too."""
    return "IS DISTINCT FROM" if _postgresql() else "IS NOT"


def _delete(cohort_id: int, batch: Sequence[Identity]) -> int:
    source, params = _source(batch, with_extras=False)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {TABLE} WHERE id IN (SELECT m.id FROM ({source}) v "
            f"JOIN {TABLE} m ON m.cohort_id = %s AND {JOIN_ON_KEY})",
            [*params, cohort_id],
        )
        return int(cursor.rowcount)


def add_members(
    cohort_id: int, identities: Iterable[Identity], *, update_extras: bool = False
) -> ChangeCounts:
    """Add in bulk; a present member is ignored (or has its extra identifiers refreshed)."""
    unique = _unique(identities)
    now = timezone.now()
    counts = ChangeCounts()
    for batch in _chunks(unique):
        added = _insert(cohort_id, batch, now, update_extras)
        counts += ChangeCounts(added=added, ignored=len(batch) - added)
    return counts


def remove_members(cohort_id: int, identities: Iterable[Identity]) -> ChangeCounts:
    unique = _unique(identities)
    counts = ChangeCounts()
    for batch in _chunks(unique):
        removed = _delete(cohort_id, batch)
        counts += ChangeCounts(removed=removed, ignored=len(batch) - removed)
    return counts


def record_change(cohort_id: int, counts: ChangeCounts, *, renamed: bool = False) -> None:
    """Keep the cohort's count, last change and size history, and announce it after commit.

    Call inside the transaction that made the change.
    """
    if not (counts.added or counts.removed or renamed):
        return
    now = timezone.now()
    Cohort.objects.filter(pk=cohort_id).update(
        member_count=F("member_count") + counts.added - counts.removed, updated_at=now
    )
    if counts.added or counts.removed:
        size = Cohort.objects.filter(pk=cohort_id).values_list("member_count", flat=True).get()
        minute = now.replace(second=0, microsecond=0)
        CohortSizeSample.objects.update_or_create(
            cohort_id=cohort_id, at=minute, defaults={"member_count": size}
        )
        transaction.on_commit(lambda: cohort_changed.send(sender=Cohort, cohort_id=cohort_id))


def apply_changes(
    cohort_id: int,
    *,
    add: Iterable[Identity] = (),
    remove: Iterable[Identity] = (),
    update_extras: bool = False,
) -> ChangeCounts:
    """Add then remove, in one transaction; an identity in both ends up removed."""
    with transaction.atomic():
        counts = add_members(cohort_id, add, update_extras=update_extras)
        counts += remove_members(cohort_id, remove)
        record_change(cohort_id, counts)
    return counts


SEEN = "cohortsync_replace_seen"
# Identities per COPY while staging: a few MB held at once, a statement per 20,000.
STAGE_ROWS = 20_000
SEEN_COLUMNS = ", ".join(KEY_COLUMNS)
SEEN_MATCHES_MEMBER = " AND ".join(f"s.{column} = {TABLE}.{column}" for column in KEY_COLUMNS)


def _staged_row(identity: Identity) -> tuple[str, str, str, str | None]:
    """An identity as staged: its key, and its properties as JSON text (None: it gave none)."""
    properties = None if identity.properties is None else json.dumps(identity.properties)
    return (identity.id_type, identity.alias_label, identity.value, properties)


def _copy_staged(cursor: Any, identities: Sequence[Identity]) -> int:
    with cursor.copy(f"COPY {SEEN} ({SEEN_COLUMNS}, properties) FROM STDIN") as copy:
        for identity in identities:
            copy.write_row(_staged_row(identity))
    return len(identities)


def _stage(cursor: Any, chunks: Iterable[Sequence[Identity]]) -> int:
    """Every identity given into the temporary table, as the chunks come; returns how many
    (repeats included). PostgreSQL takes them by COPY, STAGE_ROWS at a time, not a statement per
    row. Not one COPY for all: between chunks the connection is free, so whatever produces them
    may use the database too."""
    staged = 0
    if connection.vendor == "postgresql":
        pending: list[Identity] = []
        for chunk in chunks:
            pending.extend(chunk)
            if len(pending) >= STAGE_ROWS:
                staged += _copy_staged(cursor, pending)
                pending = []
        staged += _copy_staged(cursor, pending)
        # Temporary tables are never analysed by autovacuum.
        cursor.execute(f"ANALYZE {SEEN}")
        return staged
    for chunk in chunks:
        cursor.executemany(
            f"INSERT INTO {SEEN} ({SEEN_COLUMNS}, properties) VALUES (%s, %s, %s, %s)",
            [_staged_row(identity) for identity in chunk],
        )
        staged += len(chunk)
    cursor.execute(f"CREATE INDEX {SEEN}_key ON {SEEN} (value, id_type, alias_label)")
    return staged


def _without_nested_loops(cursor: Any) -> str | None:
    """PostgreSQL: hash joins only, until set back; returns the setting to set back (None on
    SQLite). The members' statistics may say the cohort is empty (its first download): the
    planner then picked a nested loop that scanned the members once per staged row, quadratic
    (100,000 members took 517 s)."""
    if connection.vendor != "postgresql":
        return None
    cursor.execute("SELECT current_setting('enable_nestloop')")
    (current,) = cursor.fetchone()
    cursor.execute("SET LOCAL enable_nestloop = off")
    return str(current)


def replace_members(cohort_id: int, chunks: Iterable[Sequence[Identity]]) -> ChangeCounts:
    """Make the cohort exactly the identities given, in one transaction: add the new ones,
    remove those not given. A reader sees the members before or after, never half.

    `chunks` is consumed as it comes (a download read as a stream), never held whole: the
    identities go to a temporary table, then set-based statements replace the properties of
    the members that stay, add those the cohort lacks and delete the members absent from it.
    Whatever `chunks` raises rolls the whole replacement back.
    """
    as_json, differs = _as_json("s.properties"), _distinct_from()
    with transaction.atomic():
        # Writers of this cohort wait; readers keep seeing the committed members.
        Cohort.objects.select_for_update(no_key=True).filter(pk=cohort_id).first()
        # Only table and column names are interpolated; values travel as parameters.
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {SEEN}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {SEEN} "
                "(id_type text, alias_label text, value text, properties text)"
            )
            staged = _stage(cursor, chunks)
            nestloop = _without_nested_loops(cursor)
            # A member the source gave properties for has them replaced whole where they differ
            # (a property gone at the source is gone here, for a trait sync to null); before the
            # new members go in, so a first download compares nothing.
            cursor.execute(
                f"UPDATE {TABLE} SET properties = {as_json} FROM {SEEN} s "
                f"WHERE {TABLE}.cohort_id = %s AND {SEEN_MATCHES_MEMBER} "
                f"AND s.properties IS NOT NULL AND {TABLE}.properties {differs} {as_json}",
                [cohort_id],
            )
            # The identities the cohort lacks (repeats in the file: the conflict clause), in the
            # unique index's order: the indexes then grow at their ends instead of at random
            # pages, which halved the insert of a million shuffled identities (52 s -> 24 s).
            cursor.execute(
                f"INSERT INTO {TABLE} (cohort_id, added_at, {SEEN_COLUMNS}, properties) "
                f"SELECT %s, %s, {SEEN_COLUMNS}, {as_json} FROM {SEEN} s WHERE NOT EXISTS ("
                f"SELECT 1 FROM {TABLE} WHERE {TABLE}.cohort_id = %s AND {SEEN_MATCHES_MEMBER}) "
                f"ORDER BY {SEEN_COLUMNS} ON CONFLICT (cohort_id, {SEEN_COLUMNS}) DO NOTHING",
                [cohort_id, timezone.now(), cohort_id],
            )
            added = int(cursor.rowcount)
            cursor.execute(
                f"DELETE FROM {TABLE} WHERE cohort_id = %s AND NOT EXISTS ("
                f"SELECT 1 FROM {SEEN} s WHERE {SEEN_MATCHES_MEMBER})",
                [cohort_id],
            )
            removed = int(cursor.rowcount)
            cursor.execute(f"DROP TABLE {SEEN}")
            if nestloop is not None:
                cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [nestloop])
        counts = ChangeCounts(added=added, removed=removed, ignored=staged - added)
        record_change(cohort_id, counts)
    return counts


def size_history(cohort_id: int, *, days: int = 30) -> list[tuple[datetime, int]]:
    since = timezone.now() - timedelta(days=days)
    return list(
        CohortSizeSample.objects.filter(cohort_id=cohort_id, at__gte=since).values_list(
            "at", "member_count"
        )
    )
