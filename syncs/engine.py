"""run_sync: claim a queued run, send the diff in batches, checkpoint every accepted batch.

A checkpoint writes the ledger and the run's counters in one transaction after the partner
accepted the batch, so a run that dies resumes from the ledger: nothing sent twice (beyond the
batch in flight), nothing skipped.
"""

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from connections import crypto
from connections.models import Connection
from connections.partners.base import BatchResult, Partner, PartnerError, Recipient
from syncs import diff, ledger
from syncs.connection_removal import complete_connection_removal
from syncs.models import (
    CohortMember,
    Sync,
    SyncedMember,
    SyncRun,
    SyncRunError,
    SyncRunPlanItem,
)
from syncs.realtime import start_follow_up
from syncs.run_errors import error_row
from syncs.run_events import Kind, record_event
from syncs.run_outcome import finish_run, refuse_connection
from syncs.run_plan import Scope, plan_run, restore_plan
from syncs.sending import BatchSender, StopRun

logger = logging.getLogger(__name__)

Status = SyncRun.Status
# Well under the reaper's 90 s: sleeps are cut into pieces this long, with a beat after each.
HEARTBEAT_EVERY_SECONDS = 15.0
T = TypeVar("T")
# Members read per diff query; sent in batches of the partner's size, each checkpointed.
PAGE_MEMBERS = 1000
Op = SyncRunPlanItem.Op


def run_sync(run_id: int, *, sleep: Callable[[float], None] = time.sleep) -> str:
    now = timezone.now()
    claimed = SyncRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=now, heartbeat_at=now
    )
    if not claimed:
        return "not claimed"
    run = SyncRun.objects.select_related("sync__connection", "sync__cohort").get(pk=run_id)
    record_event(
        run.pk,
        Kind.RESUMED if run.interruptions else Kind.CLAIMED,
        f"A worker took the run up again after {run.interruptions} interruption(s)."
        if run.interruptions
        else "A worker claimed the run.",
    )
    try:
        with checkpoints_without_fsync_wait():
            RunSender(run, sleep=sleep).execute()
    except LostClaim:
        logger.warning("Sync run %s was taken over by another worker; this one stops.", run_id)
        return "lost claim"
    except StopRun as stop:
        finish_run(run, stop.status, stop.message)
    except Exception:
        logger.exception("Sync run %s crashed", run_id)
        finish_run(run, Status.FAILED, "cohortsync hit an internal error; the run was stopped.")
        raise
    finally:
        start_follow_up(run.sync_id)
    status = SyncRun.objects.values_list("status", flat=True).get(pk=run_id)
    if run.trigger == SyncRun.Trigger.CLEANUP:
        # The last cleanup run to finish deletes the connection (and with it this run).
        complete_connection_removal(run.sync.connection_id)
    return status


@contextmanager
def checkpoints_without_fsync_wait() -> Iterator[None]:
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


class LostClaim(Exception):
    """Another worker holds the run now; this one stops without touching it."""


class RunSender:
    def __init__(self, run: SyncRun, *, sleep: Callable[[float], None]) -> None:
        self.run = run
        self.sync: Sync = run.sync
        self.connection: Connection = run.sync.connection
        self._sleep = sleep
        try:
            secret = crypto.decrypt(self.connection.encrypted_secret)
            self.partner: Partner = self.connection.partner(self.connection.get_config(), secret)
        except (ValueError, crypto.CredentialError) as exc:
            raise StopRun(f"The connection cannot be used: {exc}") from None
        config = self.partner.config
        self.sender = BatchSender(
            run_id=run.pk,
            connection=self.connection,
            partner=self.partner,
            cohort_label=self.sync.cohort.name,
            options=self.sync.options,
            count=self._count,
            sleep=self._sleep_beating,
        )
        self.scope = Scope.of(run, self.sync)
        self.mapping: list[str] = self.sync.identifier_mapping or [
            getattr(config, "default_identifier", "external_id")
        ]

    def execute(self) -> None:
        self._prepare_destination()
        # A run resumed after its worker died keeps the plan it made; a new one makes its own.
        if self.run.interruptions == 0 or not (self.run.planned or self.run.processed):
            self._plan()
        elif not SyncRunPlanItem.objects.filter(run_id=self.run.pk).exists():
            restore_plan(self.run, self.scope)
        # A resumed run goes on from its checkpointed cursors, through the plan it stored.
        after = self.run.add_cursor
        while page := diff.page_to_add(
            self.sync, run_id=self.run.pk, after_id=after, limit=self._page_size()
        ):
            after = page.last_ref
            for batch in self._batches(page.rows):
                self._send_adds(batch)
        after = self.run.remove_cursor
        while ledger_page := diff.page_to_remove(
            self.sync,
            run_id=self.run.pk,
            after_id=after,
            limit=self._page_size(),
            everything=self.scope.cleanup,
        ):
            after = ledger_page.last_ref
            for removals in self._batches(ledger_page.rows):
                self._send_removes(removals)
        self.run.refresh_from_db()
        status = Status.PARTIALLY_FAILED if self.run.failed else Status.SUCCEEDED
        finish_run(self.run, status, "")

    def _page_size(self) -> int:
        """Whole batches, about PAGE_MEMBERS a page: one diff query feeds several requests."""
        size = self.sender.batch_size
        return size * max(1, PAGE_MEMBERS // size)

    def _batches(self, rows: Sequence[T]) -> Iterator[Sequence[T]]:
        """The page in batches of the sender's size, read for each (a partner may lower it)."""
        start = 0
        while start < len(rows):
            size = self.sender.batch_size
            yield rows[start : start + size]
            start += size

    def _prepare_destination(self) -> None:
        """Let the partner make what the sync needs first (AppsFlyer: its audience)."""
        try:
            options = self.partner.prepare_sync(
                cohort_label=self.sync.cohort.name, options=self.sync.options
            )
        except PartnerError as exc:
            if exc.auth:
                refuse_connection(self.connection, exc.message)
            raise StopRun(
                f"{self.partner.label} could not prepare the sync: {exc.message}"
            ) from None
        if options != self.sync.options:
            Sync.objects.filter(pk=self.sync.pk).update(options=options)
            self.sync.options = options
            self.sender.options = options

    def _plan(self) -> None:
        plan_run(self.run, self.scope, batch_size=self.sender.batch_size)

    def _send_adds(self, page: Sequence[CohortMember]) -> None:
        recipients, skipped = [], []
        for member in page:
            recipient = diff.recipient_for(member, self.mapping)
            if recipient is None:
                skipped.append(member)
            else:
                recipients.append(recipient)
        started = time.monotonic()
        # A page of members with no usable identifier sends nothing: an empty result.
        nothing = BatchResult(accepted=[], failed=[], requests=0, status=200)
        result = self.sender.send(add=recipients, remove=[]) if recipients else nothing
        elapsed_ms = round((time.monotonic() - started) * 1000)
        by_ref = {member.pk: member for member in page}
        accepted = set(result.accepted)
        with transaction.atomic():
            ledger.record_sent(
                self.sync.pk,
                self.run.pk,
                [
                    ledger.LedgerRow(
                        by_ref[r.ref].id_type,
                        by_ref[r.ref].alias_label,
                        by_ref[r.ref].value,
                        r.identifier_type,
                        r.identifier,
                        r.alias_label,
                    )
                    for r in recipients
                    if r.ref in accepted
                ],
            )
            errors = [
                error_row(self.run.pk, "add", _identity(by_ref[ref]), reason, result.status)
                for ref, reason in result.failed
            ]
            unusable = f"No usable identifier ({' → '.join(self.mapping)})"
            errors += [error_row(self.run.pk, "add", _identity(m), unusable, None) for m in skipped]
            SyncRunError.objects.bulk_create(errors)
            counts = {
                "added": len(accepted),
                "failed": len(result.failed),
                "skipped": len(skipped),
            }
            running = self._checkpoint(counts, add_cursor=page[-1].pk)
            record_event(self.run.pk, Kind.BATCH, "", **counts, ms=elapsed_ms)
        # Checked after the checkpoint: what the partner accepted is always in the ledger.
        if not running:
            self._check_still_running()

    def _send_removes(self, rows: Sequence[SyncedMember]) -> None:
        recipients = [
            Recipient(row.pk, row.dest_type, row.dest_value, row.dest_label) for row in rows
        ]
        started = time.monotonic()
        result = self.sender.send(add=[], remove=recipients)
        elapsed_ms = round((time.monotonic() - started) * 1000)
        accepted = set(result.accepted)
        by_ref = {row.pk: row for row in rows}
        with transaction.atomic():
            ledger.record_removed(self.sync.pk, self.run.pk, [by_ref[ref] for ref in accepted])
            SyncRunError.objects.bulk_create(
                error_row(self.run.pk, "remove", _identity(by_ref[ref]), reason, result.status)
                for ref, reason in result.failed
            )
            counts = {"removed": len(accepted), "failed": len(result.failed)}
            running = self._checkpoint(counts, remove_cursor=rows[-1].pk)
            record_event(self.run.pk, Kind.BATCH, "", **counts, ms=elapsed_ms)
        if not running:
            self._check_still_running()

    def _check_still_running(self) -> None:
        status = SyncRun.objects.values_list("status", flat=True).get(pk=self.run.pk)
        if status == Status.CANCELED:
            raise StopRun("The run was canceled.", status=status)
        if status != Status.RUNNING:
            # The reaper gave up on this run (it thought this worker dead) and finished it.
            raise LostClaim(self.run.pk)

    def _ours(self) -> Any:
        """The run while this worker holds it: a reaper that re-queued it (believing this
        worker dead) bumped its interruptions, and another worker may be sending it now."""
        return SyncRun.objects.filter(pk=self.run.pk, interruptions=self.run.interruptions)

    def _count(self, **counts: Any) -> None:
        """Add to the run's counters (named as its columns) and beat the heartbeat."""
        self._ours().update(**_updates(counts))

    def _sleep_beating(self, seconds: float) -> None:
        """Sleep (backoff, rate-limit waits) while beating the heartbeat, so a long wait never
        looks like a dead worker to the reaper (stale after 90 s)."""
        while seconds > 0:
            chunk = min(seconds, HEARTBEAT_EVERY_SECONDS)
            self._sleep(chunk)
            seconds -= chunk
            self.beat()

    def beat(self) -> None:
        self._ours().filter(status=Status.RUNNING).update(heartbeat_at=timezone.now())

    def _checkpoint(self, counts: dict[str, int], **cursor: int) -> bool:
        """A batch's counters, with the requests that sent it; False when the run is no longer
        running (canceled): the update that adds the counts says so, no extra query."""
        total: dict[str, Any] = dict(counts)
        for name, value in self.sender.take_uncounted().items():
            total[name] = total.get(name, 0) + value
        updates = _updates({**total, **cursor})
        if self._ours().filter(status=Status.RUNNING).update(**updates):
            return True
        if not self._ours().exists():
            # Rolls the checkpoint back: the worker that holds the run now sends this batch.
            raise LostClaim(self.run.pk)
        self._ours().update(**updates)
        return False


def _updates(counts: dict[str, Any]) -> dict[str, Any]:
    # Cursors are set, not added to: they are where the next page starts.
    updates: dict[str, Any] = {
        name: counts.pop(name) for name in ("add_cursor", "remove_cursor") if name in counts
    }
    updates.update({name: F(name) + value for name, value in counts.items() if value})
    updates["heartbeat_at"] = timezone.now()
    return updates


def _identity(member: CohortMember | SyncedMember) -> tuple[str, str, str]:
    return (member.id_type, member.alias_label, member.value)
