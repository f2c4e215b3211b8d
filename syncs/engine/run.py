"""run_sync: claim a queued run, send the diff in batches, checkpoint every accepted batch.

A checkpoint writes the ledger and the run's counters in one transaction after the partner
accepted the batch (syncs/engine/checkpoint.py), so a run that dies resumes from the ledger: nothing
skipped, and nothing sent twice beyond the batches in flight.

As many batches are in flight at once as the run's window allows (syncs/engine/window.py: rate
x latency, within the connection's maximum concurrent requests, shared by all its runs and
workers, always under its rate limit): while the sending
threads post the next ones, this thread takes the answers of the oldest, always in the order
they were sent, and checkpoints them together (a group commit, syncs/engine/group_commit.py), so
a checkpoint's cursor never passes a batch that is not in the ledger. On PostgreSQL the plan's
pages are read ahead and the group commits written on threads of their own
(syncs/engine/background.py), so this thread waits on no database round trip while it sends.

The resume bound that follows: a killed worker has sent at most the members of two group commits
(the one being written and the one being gathered, each under GATHER_WHILE_WRITING times
COHORTSYNC_CHECKPOINT_MEMBERS plus one batch) and those of its batches sent and not yet settled
(UNSETTLED_PER_SLOT times its in-flight limit, times the batch size) that its ledger lacks; the
next worker sends those again (both partners' writes are idempotent).
"""

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from connections import crypto
from connections.models import Connection
from connections.partners.base import BatchResult, Partner, Recipient
from connections.partners.http import PartnerError
from core import stopping
from core.garbage_collection import fewer_collections
from syncs.engine import checkpoint, diff
from syncs.engine.array_cap import ArrayCapGuard
from syncs.engine.background import off_thread_possible, read_ahead
from syncs.engine.checkpoint import InFlight
from syncs.engine.diff import PlannedMember
from syncs.engine.events import Kind, record_event
from syncs.engine.group_commit import GroupCommit
from syncs.engine.outcome import finish_run, interrupt_run, refuse_connection
from syncs.engine.plan import Scope, plan_run, restore_plan
from syncs.engine.posting import HEARTBEAT_EVERY_SECONDS
from syncs.engine.sending import BatchSender, Interrupted, StopRun
from syncs.engine.trait_run import TraitWork
from syncs.engine.window import Window, known_latency_ms
from syncs.models import Sync, SyncedMember, SyncRun, SyncRunPlanItem

logger = logging.getLogger(__name__)

Status = SyncRun.Status
T = TypeVar("T")
# Members read per query of the plan; sent in batches of the partner's size, each checkpointed.
PAGE_MEMBERS = 1000
# Batches one run keeps in flight at most, whatever its connection allows (each has a thread).
SENDS_IN_FLIGHT = 256
# Batches sent and not yet settled, per request the run may have in flight: answered batches
# wait behind an older one still out without holding a request's slot.
UNSETTLED_PER_SLOT = 2
Op = SyncRunPlanItem.Op
WORKER_STOPPING = (
    "The worker was asked to stop: what the partner accepted is checkpointed, and the run "
    "resumes from there with the next worker."
)


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
        with fewer_collections(), checkpoint.without_fsync_wait():
            RunSender(run, sleep=sleep).execute()
    except LostClaim:
        logger.warning("Sync run %s was taken over by another worker; this one stops.", run_id)
        return "lost claim"
    except StopRun as stop:
        finish_run(run, stop.status, stop.message)
    except Interrupted as stop:
        interrupt_run(run, stop.message, resume_in=stop.resume_in)
        return "interrupted"
    except Exception:
        logger.exception("Sync run %s crashed", run_id)
        finish_run(run, Status.FAILED, "cohortsync hit an internal error; the run was stopped.")
        raise
    # What follows a run (a real-time follow-up, the end of a connection's removal) listens to
    # run_finished, which finish_run sent; the run may be gone now with its connection.
    status = SyncRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    return status or "deleted with its connection"


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
        in_flight_limit = max(1, min(SENDS_IN_FLIGHT, self.partner.max_in_flight(config)))
        self.window = Window(
            limit=in_flight_limit,
            rate=self.partner.rate_limit(config),
            known_latency_ms=known_latency_ms(self.connection.pk),
        )
        self.unsettled_limit = UNSETTLED_PER_SLOT * in_flight_limit
        self.off_thread = off_thread_possible()
        self.sender = BatchSender(
            run_id=run.pk,
            connection=self.connection,
            partner=self.partner,
            cohort_label=self.sync.cohort.name,
            options=self.sync.options,
            count=self._count,
            sleep=self._sleep_beating,
            pause=sleep,
            beat=self.beat,
            in_flight=in_flight_limit,
        )
        self.in_flight: deque[InFlight] = deque()
        # Batches answered and not yet checkpointed, oldest first, and their writer.
        self.answered = GroupCommit(
            members=settings.COHORTSYNC_CHECKPOINT_MEMBERS,
            seconds=settings.COHORTSYNC_CHECKPOINT_SECONDS,
            off_thread=self.off_thread,
        )
        self.scope = Scope.of(run, self.sync)
        self.mapping: list[str] = self.sync.identifier_mapping or [
            self.partner.default_identifier(config)
        ]
        self.array_cap: ArrayCapGuard | None = None
        # A trait sync's run: what it plans and sends differs, the rest is this loop.
        self.traits = TraitWork.of(run, self.sync) if self.sync.is_traits else None

    def execute(self) -> None:
        try:
            self._execute()
        finally:
            try:
                self.answered.close()
            finally:
                self.sender.close()

    def _execute(self) -> None:
        self._prepare_destination()
        self._note_what_the_partner_does()
        # A trait run writes no membership array (invariant 9 is about those).
        if self.traits is None:
            self.array_cap = ArrayCapGuard.of(
                sync=self.sync,
                partner=type(self.partner),
                config=self.partner.config,
                options=self.sync.options,
            )
        # A run resumed after its worker died keeps the plan it made; a new one makes its own.
        if self.run.interruptions == 0 or not (self.run.planned or self.run.processed):
            self._plan()
        elif not SyncRunPlanItem.objects.filter(run_id=self.run.pk).exists():
            restore_plan(self.run, self.scope)
        # A resumed run goes on from its checkpointed cursors, through the plan it stored.
        last_adds: list[PlannedMember] = []
        for members in self._batches(self._planned_adds()):
            if self.partner.mixes_adds_and_removes and len(members) < self.sender.batch_size:
                last_adds = members  # its first removals fill the rest of their request
                continue
            self._send_adds(members)
        removals = self._batches(
            self._planned_removals(), first=self.sender.batch_size - len(last_adds)
        )
        if last_adds:
            self._send_adds(last_adds, removals=next(removals, []))
        for rows in removals:
            self._send_removes(rows)
        while self.in_flight:
            self._settle(self.in_flight.popleft())
        self._commit_answered(everything=True)
        latency = self.sender.latency_ms()
        if latency is not None:
            self._ours().update(partner_latency_ms=latency)
        self.run.refresh_from_db()
        status = Status.PARTIALLY_FAILED if self.run.failed else Status.SUCCEEDED
        finish_run(self.run, status, "")

    def _note_what_the_partner_does(self) -> None:
        """Keep on the run whether its adds are applied and what each member costs in the
        partner's data points, as its pages say them."""
        config, options = self.partner.config, self.sync.options
        per_member = self.partner.data_points_per_object(config, options)
        facts = {
            "adds_applied": self.partner.applies_every_add(config),
            "data_points_per_member": per_member,
        }
        if self.traits is not None:
            # Trait updates create the profiles they name, and bill per attribute written
            # (the run's attributes_written), not per member.
            facts = {
                "adds_applied": True,
                "data_points_per_member": None if per_member is None else 0,
                "updates_traits": True,
            }
        changed = {name: value for name, value in facts.items() if getattr(self.run, name) != value}
        if changed:
            SyncRun.objects.filter(pk=self.run.pk).update(**changed)
            for name, value in changed.items():
                setattr(self.run, name, value)

    def _planned_adds(self) -> Iterator[list[PlannedMember]]:
        return read_ahead(self._pages_to_add, off_thread=self.off_thread)

    def _pages_to_add(self) -> Iterator[list[PlannedMember]]:
        after = self.run.add_cursor
        pages = self.traits.page if self.traits is not None else self._page_to_add
        while page := pages(
            mapping=self.mapping, run_id=self.run.pk, after_id=after, limit=PAGE_MEMBERS
        ):
            after = page.last_ref
            yield page.rows

    def _page_to_add(
        self, *, mapping: list[str], run_id: int, after_id: int, limit: int
    ) -> diff.Page[PlannedMember] | None:
        return diff.page_to_add(
            self.sync,
            mapping=mapping,
            run_id=run_id,
            after_id=after_id,
            limit=limit,
            until=diff.whole_cohort_until(self.run),
        )

    def _planned_removals(self) -> Iterator[list[SyncedMember]]:
        after = self.run.remove_cursor
        while page := diff.page_to_remove(
            self.sync,
            run_id=self.run.pk,
            after_id=after,
            limit=PAGE_MEMBERS,
            everything=self.scope.cleanup,
        ):
            after = page.last_ref
            yield page.rows

    def _batches(self, pages: Iterator[list[T]], *, first: int | None = None) -> Iterator[list[T]]:
        """The pages' rows in batches of the sender's size, read for each batch (a partner may
        lower it), the first of `first` rows when given; a batch may span pages, so pages stay
        small whatever the partner takes."""
        pending: list[T] = []
        size = first or self.sender.batch_size
        for rows in pages:
            pending += rows
            while len(pending) >= size:
                yield pending[:size]
                pending = pending[size:]
                size = self.sender.batch_size
        if pending:
            yield pending

    def _prepare_destination(self) -> None:
        """Let the partner make what the sync needs first (AppsFlyer: its audience)."""
        try:
            prepared = self.partner.prepare_sync(
                cohort_label=self.sync.cohort.name, options=self.sync.options
            )
        except PartnerError as exc:
            if exc.status is not None:  # the partner answered: a request made
                self._count(requests=1)
            if exc.auth:
                refuse_connection(self.connection, exc.message)
            raise StopRun(
                f"{self.partner.label} could not prepare the sync: {exc.message}"
            ) from None
        if prepared.requests:
            self._count(requests=prepared.requests)
        options = prepared.options
        if options != self.sync.options:
            Sync.objects.filter(pk=self.sync.pk).update(options=options)
            self.sync.options = options
            self.sender.options = options

    def _plan(self) -> None:
        if self.traits is not None:
            self.traits.plan(self.run, self.scope, batch_size=self.sender.batch_size)
        else:
            plan_run(self.run, self.scope, batch_size=self.sender.batch_size)

    def _send_adds(
        self, members: Sequence[PlannedMember], removals: Sequence[SyncedMember] = ()
    ) -> None:
        """Send a batch of adds, with `removals` in the same request (a partner that mixes
        them: the run's last adds take its first removals along)."""
        sending, skipped = [], []
        # A trait run's batch: each member's ledger values once the partner accepts it.
        traits: dict[int, dict[str, Any]] | None = None if self.traits is None else {}
        for member in members:
            update = self.traits.pending.pop(member.pk, None) if self.traits else None
            if member.dest_type is None:  # none of the mapping's identifiers
                skipped.append(member)
                continue
            recipient = Recipient(member.pk, member.dest_type, member.dest_value, member.dest_label)
            if traits is not None:
                if update is None:
                    # Nothing left to change: not sent, and counted as skipped when the run
                    # ends, as a member that left the diff.
                    continue
                recipient = replace(recipient, attributes=update.attributes)
                traits[member.pk] = update.ledger
            sending.append((member, recipient))
        # Invariant 9: a member whose array is full already fails here, unsent.
        refused = self.array_cap.overflowing(sending) if self.array_cap else {}
        recipients = [recipient for _, recipient in sending if recipient.ref not in refused]
        removing = [_removal(row, ref=-row.pk) for row in removals]
        # A batch of members with no usable identifier sends nothing.
        started = (
            self.sender.start(add=recipients, remove=removing) if recipients or removing else None
        )
        batch = InFlight(
            "add",
            members,
            recipients,
            skipped,
            started,
            refused=list(refused.items()),
            removals=removals,
            removal_recipients=removing,
            traits=traits,
        )
        self._queue(batch)

    def _send_removes(self, rows: Sequence[SyncedMember]) -> None:
        recipients = [_removal(row, ref=row.pk) for row in rows]
        started = self.sender.start(add=[], remove=recipients)
        self._queue(InFlight("remove", rows, recipients, [], started))

    def _queue(self, batch: InFlight) -> None:
        """Keep up to the window's requests going; take the answers of the oldest, in order,
        as they come. A batch answered and waiting behind an older one holds no request: the
        window counts requests unanswered, so one slow answer does not stall the others (up
        to UNSETTLED_PER_SLOT times the in-flight limit of batches are kept unsettled at most)."""
        self.in_flight.append(batch)
        while self.in_flight:
            if _answered(self.in_flight[0]) or len(self.in_flight) >= self.unsettled_limit:
                self._settle(self.in_flight.popleft())
            elif self.sender.unanswered >= self.window.size:
                self.sender.wait_for_an_answer(below=self.window.size)
            else:
                return

    def _settle(self, batch: InFlight) -> None:
        """Take the batch's answer (retried as needed); it goes into the next group commit."""
        try:
            result = (
                self.sender.finish(batch.started, add=batch.adds, remove=batch.removes)
                if batch.started is not None
                else NOTHING_SENT
            )
        except (StopRun, Interrupted):
            self._settle_accepted()
            raise
        self.window.after_answer(
            throttled=self.sender.throttled,
            latency_ms=self.sender.latency_ms(),
            remaining=self.sender.remaining,
        )
        self._answer(batch, result)
        if self.answered.due():
            self._commit_answered()

    def _answer(self, batch: InFlight, result: BatchResult) -> None:
        self.answered.add(
            checkpoint.of_batch(
                self.run, batch, result, self.mapping, uncounted=self.sender.take_uncounted()
            ),
            members=len(batch.rows) + len(batch.removals),
        )

    def _commit_answered(self, *, last: bool = False, everything: bool = False) -> None:
        """The group commit: every answered batch in one checkpoint (and, for the run's
        `last` commit as it stops or once `everything` was sent, every write finished). Then
        stop if the run was canceled, taken over, or its worker is stopping (unless this is
        the stopping run's `last` commit)."""
        if self.answered.idle:
            return
        status = self.answered.finish() if last or everything else self.answered.commit()
        if status is None:
            raise LostClaim(self.run.pk)
        if last:
            return
        # Checked after the checkpoint: what the partner accepted is always in the ledger.
        if status == Status.CANCELED:
            self._settle_accepted()
            raise StopRun("The run was canceled.", status=status)
        if status != Status.RUNNING:
            # The reaper gave up on this run (it thought this worker dead) and finished it.
            raise LostClaim(self.run.pk)
        if stopping.stop_requested():
            self._settle_accepted()
            raise Interrupted(WORKER_STOPPING)

    def _settle_accepted(self) -> None:
        """The run stops: checkpoint the batches answered and those in flight that the partner
        accepted, without retrying the others, so the ledger holds everything it took."""
        while self.in_flight:
            batch = self.in_flight.popleft()
            result = self.sender.accepted(batch.started) if batch.started is not None else None
            if result is not None:
                self._answer(batch, result)
        self._commit_answered(last=True)

    def _ours(self) -> Any:
        """The run while this worker holds it: a reaper that re-queued it (believing this
        worker dead) bumped its interruptions, and another worker may be sending it now."""
        return SyncRun.objects.filter(pk=self.run.pk, interruptions=self.run.interruptions)

    def _count(self, **counts: Any) -> None:
        """Add to the run's counters (named as its columns) and beat the heartbeat."""
        self._ours().update(
            **{name: F(name) + value for name, value in counts.items() if value},
            heartbeat_at=timezone.now(),
        )

    def _sleep_beating(self, seconds: float) -> None:
        """Sleep (backoff, rate-limit waits) while beating the heartbeat, so a long wait never
        looks like a dead worker to the reaper (stale after 90 s)."""
        while seconds > 0:
            if stopping.stop_requested():
                raise Interrupted(WORKER_STOPPING)
            chunk = min(seconds, HEARTBEAT_EVERY_SECONDS)
            self._sleep(chunk)
            seconds -= chunk
            self.beat()

    def beat(self) -> None:
        self._ours().filter(status=Status.RUNNING).update(heartbeat_at=timezone.now())


NOTHING_SENT = BatchResult(accepted=[], failed=[], requests=0, status=200)


def _removal(row: SyncedMember, *, ref: int) -> Recipient:
    """A ledger row as the partner is asked to remove it: addressed as it was sent."""
    return Recipient(ref, row.dest_type, row.dest_value, row.dest_label)


def _answered(batch: InFlight) -> bool:
    """Whether the batch's first attempt has its answer (a batch that sent nothing has)."""
    return batch.started is None or batch.started.done()
