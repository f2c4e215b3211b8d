"""A checkpoint: what the partner accepted of one batch, written in one transaction
(docs/architecture.md §5, "Sync run"): the ledger rows it added or took out, its failed and
skipped members, the run's counters and cursor, and the batch's line in the timeline.

It is written only while the run is still this worker's (its `interruptions` unchanged: a
reaper that re-queued the run bumped them). A checkpoint that finds the run taken over writes
nothing; one that finds it canceled is still written, since the partner did accept the batch.

On PostgreSQL a checkpoint of adds takes one of two ways:

- Members new to the ledger (a run that is neither resumed nor a full resync: its plan is the
  cohort less the ledger, and no other run of the sync writes beside it) are copied in. One
  transaction: the counters UPDATE with the INSERTs of the errors and the event (one prepared
  statement), then a binary COPY of the ledger rows. COPY writes a row for half of what an
  INSERT ... ON CONFLICT costs the server (5.5 against 10.5 µs on the 2-core bench box).
- Otherwise, or when a copied row is in the ledger all the same (a unique violation rolls the
  copy back), the same parts and the ledger's INSERT ... ON CONFLICT DO NOTHING are one
  statement: a member already in the ledger stays as it is.

Removals (which move ledger rows into the removal history) and SQLite go through the ORM in one
transaction.
"""

import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import orjson
import psycopg
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from connections.partners.base import BatchResult, Recipient
from syncs.engine import ledger
from syncs.engine.diff import PlannedMember
from syncs.engine.errors import error_row, skipped_reason
from syncs.engine.trait_run import TraitRow, record_traits
from syncs.models import SyncedMember, SyncRun, SyncRunError, SyncRunEvent

if TYPE_CHECKING:
    from syncs.engine.posting import Attempt

logger = logging.getLogger(__name__)

COUNTERS = ("added", "removed", "failed", "skipped", "requests", "throttled_seconds")


@dataclass
class Checkpoint:
    run_id: int
    interruptions: int
    sync_id: int
    counts: dict[str, float]
    add_cursor: int | None = None
    remove_cursor: int | None = None
    sent: Sequence[ledger.LedgerRow] = ()
    # A trait run's ledger rows (syncs/engine/trait_run.py) instead of `sent`.
    traits: Sequence[TraitRow] = ()
    removed: Sequence[SyncedMember] = ()
    errors: Sequence[SyncRunError] = ()
    # The timeline's line for the batch (its counts and milliseconds).
    event: dict[str, Any] = field(default_factory=dict)
    # Whether the members `sent` were not in the sync's ledger when the run planned them, and
    # no other run may have added them since: their rows are copied in rather than merged.
    new_to_ledger: bool = False


@dataclass
class InFlight:
    """A batch sent and not yet checkpointed: its members or ledger rows, what was sent of
    them, the members skipped for want of an identifier, the attempt under way, and the members
    failed before sending with the reason (refs: an add past an array's cap).

    A partner that takes adds and removes in one request gets the run's last adds with its
    first removals: `removals` and `removal_recipients`, whose refs are the ledger rows' ids
    negated, so they never meet an add's ref."""

    op: str  # "add" or "remove"
    rows: Sequence[PlannedMember] | Sequence[SyncedMember]
    recipients: list[Recipient]
    skipped: list[PlannedMember]
    started: "Future[Attempt] | None"
    at: float = field(default_factory=time.monotonic)
    refused: Sequence[tuple[int, str]] = ()
    removals: Sequence[SyncedMember] = ()
    removal_recipients: list[Recipient] = field(default_factory=list)
    # A trait run's batch: member ref -> the values its ledger row holds once accepted.
    traits: dict[int, dict[str, Any]] | None = None

    @property
    def adds(self) -> list[Recipient]:
        return self.recipients if self.op == "add" else []

    @property
    def removes(self) -> list[Recipient]:
        return self.removal_recipients if self.op == "add" else self.recipients


def of_batch(
    run: SyncRun,
    batch: InFlight,
    result: BatchResult,
    mapping: Sequence[str],
    *,
    uncounted: dict[str, float],
) -> Checkpoint:
    """The checkpoint of a batch the partner answered: `uncounted` are the sender's requests
    and waits not yet added to the run's counters."""
    adds = batch.op == "add"
    by_ref: dict[int, PlannedMember | SyncedMember] = {row.pk: row for row in batch.rows}
    by_ref.update((-row.pk, row) for row in batch.removals)
    accepted = set(result.accepted)
    errors = [
        error_row(run.pk, _operation(by_ref[ref]), _identity(by_ref[ref]), reason, result.status)
        for ref, reason in result.failed
    ]
    if batch.skipped:
        unusable = skipped_reason(mapping)
        errors += [error_row(run.pk, "add", _identity(m), unusable, None) for m in batch.skipped]
    errors += [
        error_row(run.pk, batch.op, _identity(by_ref[ref]), reason, None)
        for ref, reason in batch.refused
    ]
    sent: list[ledger.LedgerRow] = []
    traits: list[TraitRow] = []
    attributes = 0
    if adds:
        taken = [recipient for recipient in batch.recipients if recipient.ref in accepted]
        planned = cast(dict[int, PlannedMember], by_ref)
        if batch.traits is None:
            sent = [_ledger_row(planned[recipient.ref]) for recipient in taken]
        else:
            values = batch.traits
            traits = [_trait_row(planned[r.ref], r, values[r.ref]) for r in taken]
            attributes = sum(len(recipient.attributes or {}) for recipient in taken)
    removed = [
        cast(SyncedMember, by_ref[recipient.ref])
        for recipient in batch.removes
        if recipient.ref in accepted
    ]
    counts: dict[str, float] = {"failed": len(result.failed) + len(batch.refused)}
    if adds:
        counts.update(added=len(sent) + len(traits), skipped=len(batch.skipped))
    if attributes:
        counts.update(attributes_written=attributes)
    if removed or not adds:
        counts.update(removed=len(removed))
    event = {**counts, "batches": 1, "ms": round((time.monotonic() - batch.at) * 1000)}
    for name, value in uncounted.items():
        counts[name] = counts.get(name, 0) + value
    removal_rows = batch.removals if adds else batch.rows
    return Checkpoint(
        run_id=run.pk,
        interruptions=run.interruptions,
        sync_id=run.sync_id,
        counts=counts,
        add_cursor=batch.rows[-1].pk if adds and batch.rows else None,
        remove_cursor=removal_rows[-1].pk if removal_rows else None,
        sent=sent,
        traits=traits,
        removed=removed,
        errors=errors,
        event=event,
        new_to_ledger=new_to_ledger(run),
    )


def new_to_ledger(run: SyncRun) -> bool:
    """Whether the members the run adds are none of them in its sync's ledger: its plan is the
    cohort less the ledger (not a full resync, which re-sends everyone), and it was not
    interrupted (a resumed run sends again the batches that were in flight, which the ledger
    may hold). One run of a sync at a time writes its ledger (one_active_run_per_sync)."""
    return run.interruptions == 0 and run.trigger != SyncRun.Trigger.RESYNC


def _operation(row: PlannedMember | SyncedMember) -> str:
    return "remove" if isinstance(row, SyncedMember) else "add"


def merged(checkpoints: Sequence[Checkpoint]) -> Checkpoint:
    """One checkpoint for consecutive batches, oldest first (a group commit): counts summed,
    the newest cursors, every row; one timeline line saying how many batches it holds."""
    if len(checkpoints) == 1:
        return checkpoints[0]
    counts: dict[str, float] = {}
    event: dict[str, Any] = {}
    for part in checkpoints:
        for name, value in part.counts.items():
            counts[name] = counts.get(name, 0) + value
        for name, value in part.event.items():
            event[name] = event.get(name, 0) + value
    adds = [part.add_cursor for part in checkpoints if part.add_cursor is not None]
    removes = [part.remove_cursor for part in checkpoints if part.remove_cursor is not None]
    # The batches were answered in parallel: the group took as long as its slowest.
    event["ms"] = max(part.event.get("ms", 0) for part in checkpoints)
    first = checkpoints[0]
    return Checkpoint(
        run_id=first.run_id,
        interruptions=first.interruptions,
        sync_id=first.sync_id,
        counts=counts,
        add_cursor=adds[-1] if adds else None,
        remove_cursor=removes[-1] if removes else None,
        sent=[row for part in checkpoints for row in part.sent],
        traits=[row for part in checkpoints for row in part.traits],
        removed=[row for part in checkpoints for row in part.removed],
        errors=[row for part in checkpoints for row in part.errors],
        event=event,
        new_to_ledger=all(part.new_to_ledger for part in checkpoints),
    )


def _ledger_row(member: PlannedMember) -> ledger.LedgerRow:
    """The ledger row of a member sent as planned: its fields after its id (the run sends a
    member by the identifier its page chose)."""
    return ledger.LedgerRow._make(member[1:])


def _trait_row(member: PlannedMember, sent: Recipient, values: dict[str, Any]) -> TraitRow:
    return TraitRow(
        member.id_type,
        member.alias_label,
        member.value,
        sent.identifier_type,
        sent.identifier,
        values,
    )


def _identity(member: PlannedMember | SyncedMember) -> tuple[str, str, str]:
    return (member.id_type, member.alias_label, member.value)


@contextmanager
def without_fsync_wait() -> Iterator[None]:
    """On PostgreSQL, this run's commits do not wait for the WAL to reach the disk.

    A checkpoint commits after every accepted batch; waiting for the flush each time was most of
    a checkpoint's cost. A worker that dies loses nothing this way: only a crash of the database
    server itself can lose the last fraction of a second of checkpoints, and the members of
    those batches are then sent again by the next run (both partners' writes are idempotent).
    Every other transaction of the process keeps the server's setting.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        except DatabaseError:
            pass  # the connection is broken: the setting goes with it


class _TakenOver(Exception):
    """Rolls a checkpoint back: the run is no longer this worker's."""


def commit(checkpoint: Checkpoint) -> str | None:
    """Write the checkpoint; the run's status after it, or None when the run is no longer this
    worker's (then nothing was written)."""
    # Removals and trait rows take the ORM path: neither is in the one statement.
    if connection.vendor == "postgresql" and not checkpoint.removed and not checkpoint.traits:
        if checkpoint.new_to_ledger and checkpoint.sent:
            try:
                return _commit_copying(checkpoint)
            except psycopg.errors.UniqueViolation:
                # Rolled back whole: merged below instead, every row that is new written.
                logger.warning(
                    "Run %s: a member it copied into the ledger was there already; its "
                    "checkpoint merges the rows instead.",
                    checkpoint.run_id,
                )
        return _commit_in_one_statement(checkpoint)
    try:
        with transaction.atomic():
            return _commit_with_orm(checkpoint)
    except _TakenOver:
        return None


def _commit_with_orm(checkpoint: Checkpoint) -> str:
    ours = SyncRun.objects.filter(pk=checkpoint.run_id, interruptions=checkpoint.interruptions)
    updates: dict[str, Any] = {
        name: F(name) + value for name, value in checkpoint.counts.items() if value
    }
    for name in ("add_cursor", "remove_cursor"):
        if getattr(checkpoint, name) is not None:
            updates[name] = getattr(checkpoint, name)
    now = timezone.now()
    if not ours.update(**updates, heartbeat_at=now):
        raise _TakenOver
    ledger.record_sent(checkpoint.sync_id, checkpoint.run_id, checkpoint.sent, at=now)
    ledger.record_removed(checkpoint.sync_id, checkpoint.run_id, checkpoint.removed)
    if checkpoint.traits:
        record_traits(checkpoint.sync_id, checkpoint.run_id, checkpoint.traits)
    SyncRunError.objects.bulk_create(checkpoint.errors)
    SyncRunEvent.objects.create(
        run_id=checkpoint.run_id, kind=SyncRunEvent.Kind.BATCH, details=checkpoint.event
    )
    return ours.values_list("status", flat=True).get()


def _commit_in_one_statement(checkpoint: Checkpoint) -> str | None:
    connection.ensure_connection()
    # Django's cursors bind on the client, quoting every array element in Python; a plain
    # psycopg cursor binds on the server, in binary, and the statement is prepared once.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_ONE_STATEMENT, _parameters(checkpoint, timezone.now()), prepare=True)
        row = cursor.fetchone()
    return None if row is None else str(row[0])


def _commit_copying(checkpoint: Checkpoint) -> str | None:
    """The counters, errors and event in one statement, then the ledger rows copied in, in one
    transaction; raises UniqueViolation (having written nothing) if a row was there already."""
    connection.ensure_connection()
    now = timezone.now()
    try:
        with transaction.atomic(), psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(
                _WITHOUT_LEDGER, _parameters(checkpoint, now, ledger_rows=False), prepare=True
            )
            row = cursor.fetchone()
            if row is None:
                raise _TakenOver
            with cursor.copy(_COPY_LEDGER) as copy:
                copy.set_types(_COPY_TYPES)
                head = (checkpoint.sync_id, checkpoint.run_id, now)
                for sent in checkpoint.sent:
                    copy.write_row(head + sent)
            return str(row[0])
    except _TakenOver:
        return None


def _parameters(checkpoint: Checkpoint, now: datetime, *, ledger_rows: bool = True) -> list[Any]:
    return [
        *(int(checkpoint.counts.get(name, 0)) for name in COUNTERS[:-1]),
        float(checkpoint.counts.get("throttled_seconds", 0.0)),
        checkpoint.add_cursor,
        checkpoint.remove_cursor,
        now,
        checkpoint.run_id,
        checkpoint.interruptions,
        # One JSON array of rows: psycopg packs list elements one by one in Python, JSON is
        # written in C (a 75-row batch: 0.6 ms down to 0.05 ms), and orjson writes a group
        # commit's 2,000 rows in 170 µs where the json module took 840 (its `default` turns each
        # LedgerRow, a named tuple it does not take as it is, into a tuple).
        *((checkpoint.sync_id, _json(checkpoint.sent)) if ledger_rows else ()),
        _json(
            [
                (error.operation, error.member, error.reason, error.partner_status)
                for error in checkpoint.errors
            ]
        ),
        SyncRunEvent.Kind.BATCH.value,
        _json(checkpoint.event),
    ]


def _json(value: Any) -> str:
    return orjson.dumps(value, default=tuple).decode()


def _one_statement(*, ledger_rows: bool = True) -> str:
    """The checkpoint's statement: the run's counters and cursors (only while the run is this
    worker's), its errors and its event, and its ledger rows unless they are copied."""
    run_table = SyncRun._meta.db_table
    counters = ", ".join(
        f"{name} = {name} + %s::{'float8' if name == 'throttled_seconds' else 'integer'}"
        for name in COUNTERS
    )
    columns = ", ".join(f"r->>{n}" for n in range(len(ledger.COLUMNS)))
    sent = (
        f"sent AS (INSERT INTO {ledger.TABLE} "  # noqa: S608 (names from the models)
        f"(sync_id, run_id, added_at, {', '.join(ledger.COLUMNS)}) "
        f"SELECT %s, run.id, run.heartbeat_at, {columns} "
        "FROM run, json_array_elements(%s::json) AS r "
        "ON CONFLICT (sync_id, id_type, alias_label, value) DO NOTHING), "
    )
    return (
        f"WITH run AS (UPDATE {run_table} SET {counters}, "  # noqa: S608 (names from the models)
        "add_cursor = COALESCE(%s::bigint, add_cursor), "
        "remove_cursor = COALESCE(%s::bigint, remove_cursor), heartbeat_at = %s "
        "WHERE id = %s AND interruptions = %s RETURNING id, status, heartbeat_at), "
        f"{sent if ledger_rows else ''}"
        f"failed AS (INSERT INTO {SyncRunError._meta.db_table} "
        "(run_id, operation, member, reason, partner_status, created_at) "
        "SELECT run.id, e->>0, e->>1, e->>2, (e->>3)::smallint, run.heartbeat_at "
        "FROM run, json_array_elements(%s::json) AS e), "
        f"event AS (INSERT INTO {SyncRunEvent._meta.db_table} (run_id, at, kind, message, details) "
        "SELECT run.id, run.heartbeat_at, %s, '', %s::jsonb FROM run) "
        "SELECT status FROM run"
    )


_ONE_STATEMENT = _one_statement()
_WITHOUT_LEDGER = _one_statement(ledger_rows=False)
# The ledger rows as COPY takes them: the sync, the run and the time, then a LedgerRow; binary,
# so the server parses no text.
_COPY_LEDGER = (
    f"COPY {ledger.TABLE} (sync_id, run_id, added_at, {', '.join(ledger.COLUMNS)}) "
    "FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ["int8", "int8", "timestamptz", *["text"] * len(ledger.COLUMNS)]
