"""A run's group commits: the batches the partner answered, checkpointed together (every
COHORTSYNC_CHECKPOINT_MEMBERS members or COHORTSYNC_CHECKPOINT_SECONDS), in the order they were
sent; and, on PostgreSQL, the database work that can leave the sending thread.

A run's thread decides what to send next, takes the partner's answers and keeps its batches in
flight. Each database round trip it waits on is time no new batch goes out: on a loaded box a
thread that wakes from a socket waits for the interpreter behind the sending threads, so a 2 ms
statement cost the run tens of ms. On PostgreSQL, outside a transaction (a worker, not a test
holding its data in one), the writes go to a thread of their own with its own connection, one
group commit at a time: the run goes on answering batches while the previous group is written,
and learns that group's status (canceled, taken over) when it hands over the next. Under SQLite,
or inside a transaction, the run writes each group itself, as before.

A group that is due while the previous one is still being written goes on gathering instead of
holding the run, up to GATHER_WHILE_WRITING times COHORTSYNC_CHECKPOINT_MEMBERS: a run whose
thread waited for each write sent nothing meanwhile (40 % of its thread's samples at 200,000
members and 100 ms, bench/README.md).

The resume bound that follows: a killed worker has sent at most the members of the group being
written and of the group being gathered (each under GATHER_WHILE_WRITING times
COHORTSYNC_CHECKPOINT_MEMBERS plus one batch) and those in flight, that its ledger lacks.
"""

import time
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import connection

from syncs.engine import checkpoint
from syncs.models import SyncRun

# How many groups' worth of members a run gathers while the previous group is being written,
# before it waits for that write.
GATHER_WHILE_WRITING = 4


class GroupCommit:
    """The answered batches not yet checkpointed, and the writer that checkpoints them."""

    def __init__(self, *, members: int, seconds: float, off_thread: bool) -> None:
        self.members = members
        self.seconds = seconds
        self.pending: list[checkpoint.Checkpoint] = []
        self.pending_members = 0
        self._since = 0.0
        self._writer = ThreadPoolExecutor(1, "checkpoint") if off_thread else None
        self._writing: Future[str | None] | None = None
        # The status the last written checkpoint found; a claimed run is running.
        self._status: str | None = SyncRun.Status.RUNNING

    def add(self, answered: checkpoint.Checkpoint, members: int) -> None:
        if not self.pending:
            self._since = time.monotonic()
        self.pending.append(answered)
        self.pending_members += members

    @property
    def idle(self) -> bool:
        """Nothing to checkpoint and no write under way."""
        return not self.pending and self._writing is None

    def due(self) -> bool:
        if not self.pending:
            return False
        if self.pending_members < self.members and time.monotonic() - self._since < self.seconds:
            return False
        # Due, but the previous group is still being written: gather on rather than wait.
        return not self._write_under_way() or (
            self.pending_members >= GATHER_WHILE_WRITING * self.members
        )

    def _write_under_way(self) -> bool:
        return self._writing is not None and not self._writing.done()

    def commit(self) -> str | None:
        """Checkpoint the pending batches. The run's status as the last finished write found
        it (this one's when written here; the previous one's when written off the thread), or
        None once a write found the run taken over (it then wrote nothing)."""
        if self.pending:
            group = checkpoint.merged(self.pending)
            self.pending, self.pending_members = [], 0
            if self._writer is None:
                self._status = checkpoint.commit(group)
            else:
                self._wait()
                if self._status is not None:
                    self._writing = self._writer.submit(_write_without_fsync_wait, group)
        return self._status

    def finish(self) -> str | None:
        """Checkpoint the pending batches and wait for every write: the run's status after
        the last one, or None if it was taken over."""
        self.commit()
        self._wait()
        return self._status

    def close(self) -> None:
        """Wait for the write under way (what the partner accepted is written even when the
        run stops on an error), then close the writer's connection."""
        if self._writer is None:
            return
        try:
            self._wait()
        finally:
            self._writer.submit(_close_own_connection).result()
            self._writer.shutdown()

    def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            self._status = writing.result()  # a failed write raises here, in the run's thread


def _close_own_connection() -> None:
    connection.close()  # the writer thread's own: `connection` is per thread


def _write_without_fsync_wait(group: checkpoint.Checkpoint) -> str | None:
    with checkpoint.without_fsync_wait():
        return checkpoint.commit(group)
