"""A checkpoint: what the partner accepted of one batch, written in one transaction
(docs/architecture.md §5, "Sync run"): the ledger rows it added or took out, its failed and
skipped members, the run's counters and cursor, and the batch's line in the timeline.

It is written only while the run is still this worker's (its `interruptions` unchanged: a
reaper that re-queued the run bumped them). A checkpoint that finds the run taken over writes
nothing; one that finds it canceled is still written, since the partner did accept the batch.

On PostgreSQL a checkpoint of adds is one prepared statement, its ledger rows copied in beside it
when they are new to the ledger (syncs/engine/checkpoint_sql.py). Removals (which move ledger
rows into the removal history), trait rows and SQLite go through the ORM in one transaction.
"""

import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import psycopg
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from connections.partners.base import BatchResult, Recipient
from syncs.engine import checkpoint_sql, ledger
from syncs.engine.checkpoint_sql import TakenOver
from syncs.engine.diff import PlannedMember
from syncs.engine.errors import error_row, skipped_reason
from syncs.engine.trait_run import TraitRow, record_traits
from syncs.models import SyncedMember, SyncRun, SyncRunError, SyncRunEvent

if TYPE_CHECKING:
    from syncs.engine.posting import Attempt

logger = logging.getLogger(__name__)


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


def commit(checkpoint: Checkpoint) -> str | None:
    """Write the checkpoint; the run's status after it, or None when the run is no longer this
    worker's (then nothing was written)."""
    # Removals and trait rows take the ORM path: neither is in the one statement.
    if connection.vendor == "postgresql" and not checkpoint.removed and not checkpoint.traits:
        if checkpoint.new_to_ledger and checkpoint.sent:
            try:
                return checkpoint_sql.commit_copying(checkpoint)
            except psycopg.errors.UniqueViolation:
                # Rolled back whole: merged below instead, every row that is new written.
                logger.warning(
                    "Run %s: a member it copied into the ledger was there already; its "
                    "checkpoint merges the rows instead.",
                    checkpoint.run_id,
                )
        return checkpoint_sql.commit_in_one_statement(checkpoint)
    try:
        with transaction.atomic():
            return _commit_with_orm(checkpoint)
    except TakenOver:
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
        raise TakenOver
    ledger.record_sent(checkpoint.sync_id, checkpoint.run_id, checkpoint.sent, at=now)
    ledger.record_removed(checkpoint.sync_id, checkpoint.run_id, checkpoint.removed)
    if checkpoint.traits:
        record_traits(checkpoint.sync_id, checkpoint.run_id, checkpoint.traits)
    SyncRunError.objects.bulk_create(checkpoint.errors)
    SyncRunEvent.objects.create(
        run_id=checkpoint.run_id, kind=SyncRunEvent.Kind.BATCH, details=checkpoint.event
    )
    return ours.values_list("status", flat=True).get()
