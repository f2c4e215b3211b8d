"""Send a run's batches to the partner: under the connection's shared rate limit, retried on
429, 5xx and network errors with backoff that honours the partner's reset time, split in halves
when the partner says the batch is too large. A refused credential stops the run.

Requests go out on the run's sending threads (syncs/engine/posting.py), so a run has several
batches in flight while the engine checkpoints the ones before them; their answers are taken
here, on the run's thread."""

import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from django.conf import settings

from connections.models import Connection
from connections.partners.base import BatchResult, Partner, Recipient
from connections.partners.http import BatchTooLarge, ObjectsRefused, PartnerError
from syncs.engine.events import Kind, record_event
from syncs.engine.exchanges import BatchNumber, ExchangeLog
from syncs.engine.outcome import learn_batch_size, refuse_connection
from syncs.engine.pacing import MAX_BACKOFF_SECONDS, backoff
from syncs.engine.posting import HEARTBEAT_EVERY_SECONDS, Attempt, SendingThreads
from syncs.models import SyncRun

# Attempts at one batch that 5xx answers and network errors may spend; rate-limit waits spend
# none (settings.COHORTSYNC_RUN_RATE_WAIT_SECONDS bounds them for the whole run instead).
MAX_ATTEMPTS = 6
# A run whose rate-limit waits ran past its budget resumes this much later.
RESUME_AFTER_RATE_WAIT_SECONDS = 300.0
# Waits for the shared bucket shorter than this are pacing, not news: only the total is kept.
NOTABLE_WAIT_SECONDS = 1.0


class StopRun(Exception):
    """The run cannot go on; `status` is how it ends."""

    def __init__(self, message: str, status: str = SyncRun.Status.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Interrupted(Exception):
    """The run stops here and resumes later from its last checkpoint: the worker is stopping,
    Redis stayed out of reach, or the partner's rate limit kept it waiting too long. `message`
    says which, on the run's timeline; `resume_in` is how many seconds its next job waits."""

    def __init__(self, message: str, *, resume_in: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.resume_in = resume_in


class BatchSender:
    """Sends a run's batches for one partner connection; `count` adds to the run's counters.

    `start` puts a batch's first attempt on a sending thread and `finish` takes its answer,
    retrying there when it needs to, so a run keeps up to `in_flight` requests going while it
    checkpoints the batches before them. Sending threads touch neither the database nor the
    run: they wait for the rate limit, post, and read the partner's rate-limit headers.
    """

    def __init__(
        self,
        *,
        run_id: int,
        connection: Connection,
        partner: Partner,
        cohort_label: str,
        options: dict[str, Any],
        count: Callable[..., None],
        sleep: Callable[[float], None],
        pause: Callable[[float], None] = time.sleep,
        beat: Callable[[], None] = lambda: None,
        in_flight: int = 1,
    ) -> None:
        self.run_id = run_id
        self.connection = connection
        self.partner = partner
        self.options = options
        self.count = count
        self.sleep = sleep
        self.beat = beat
        self.threads = SendingThreads(
            connection=connection,
            partner=partner,
            cohort_label=cohort_label,
            in_flight=in_flight,
            pause=pause,
        )
        self.batch_size = partner.max_batch_size()
        # Requests and waits of accepted batches, added to the counters by the engine's
        # checkpoint: one UPDATE per batch instead of two.
        self.uncounted: dict[str, float] = {}
        # The run's 429s so far, those since its last accepted batch (their backoff grows), and
        # its seconds waited for rate resets.
        self.throttled = 0
        self.throttled_in_a_row = 0
        self.rate_waited = 0.0
        self.exchange_log = ExchangeLog(run_id, type(partner))
        self._batches_started = 0

    def close(self) -> None:
        self.threads.close()

    def latency_ms(self) -> int | None:
        """The partner's average answer time so far, None before its first answer."""
        return self.threads.latency_ms()

    @property
    def unanswered(self) -> int:
        """This run's attempts on a sending thread and not yet done."""
        return self.threads.unanswered

    @property
    def remaining(self) -> int | None:
        """What the partner last said remains in its window, as a bound on the run's requests
        in flight (SendingThreads.remaining)."""
        return self.threads.remaining

    def take_uncounted(self) -> dict[str, float]:
        """What accepted sends have not counted yet, for the checkpoint to add; then forgotten."""
        taken, self.uncounted = self.uncounted, {}
        return taken

    def _count_now(self, **counts: float) -> None:
        """Count at once (a failed or split send), with whatever accepted sends left uncounted
        and the refused requests the run's page left out."""
        for name, value in self.take_uncounted().items():
            counts[name] = counts.get(name, 0) + value
        left_out = self.exchange_log.take_left_out()
        if left_out:
            counts["exchanges_left_out"] = left_out
        self.count(**counts)

    def start(self, *, add: list[Recipient], remove: list[Recipient]) -> "Future[Attempt]":
        """The batch's first attempt, on a sending thread; `finish` takes its answer."""
        self._batches_started += 1
        return self._submit(add, remove, BatchNumber(self._batches_started))

    def _submit(
        self, add: list[Recipient], remove: list[Recipient], batch: BatchNumber
    ) -> "Future[Attempt]":
        return self.threads.submit(add, remove, batch, self.options)

    def wait_for_an_answer(self, *, below: int) -> None:
        """Wait until fewer than `below` of this run's attempts are unanswered, whichever
        finishes first, beating the heartbeat during long waits."""
        self.threads.wait_for_an_answer(below=below, beat=self.beat)

    def finish(
        self,
        started: "Future[Attempt] | None",
        *,
        add: list[Recipient],
        remove: list[Recipient],
        batch: BatchNumber | None = None,
    ) -> BatchResult:
        """The batch's answer: the `started` attempt's (None: make one now), retried as needed.

        5xx and network errors spend the batch's MAX_ATTEMPTS; a 429, or a reset the partner
        announced, is waited out without spending one, within the run's budget of rate-limit
        waits (past it the run is interrupted and resumes later). A refused credential stops
        the run; a batch too large is sent in halves; objects refused by name fail alone.
        `batch`: the batch these recipients are part of (its halves, its resends), if not new."""
        failures = 0
        while True:
            if started is None:
                # Retries go through a sending thread too, this thread beating meanwhile.
                if batch is None:
                    started = self.start(add=add, remove=remove)
                else:
                    started = self._submit(add, remove, batch)
            outcome = self._answer(started)
            started = None
            batch = outcome.batch
            waited = outcome.waited
            if outcome.redis_down is not None:
                raise Interrupted(
                    f"Redis, which holds the connection's shared rate limit, was out of reach "
                    f"for {outcome.redis_down:.0f} s: the run resumes from its last checkpoint "
                    "once Redis is back."
                )
            if outcome.no_token is not None:
                # The bucket is empty for longer than we wait at once (a partner's reset far
                # away): wait our longest, then ask again.
                timeout = outcome.no_token
                pause = min(timeout.needed, MAX_BACKOFF_SECONDS)
                self._count_now(throttled_seconds=timeout.waited)
                self._wait_for_rate(pause, timeout.waited)
                self._note_wait(timeout.waited + pause, "the connection's shared rate limit")
                continue
            self._note_wait(waited, "the connection's shared rate limit")
            if outcome.too_large is not None:
                self._keep(outcome)
                self._count_now(requests=1, throttled_seconds=waited)
                return self._send_in_halves(add, remove, outcome.too_large, batch)
            if outcome.objects_refused is not None:
                self._keep(outcome)
                self._count_now(requests=1, throttled_seconds=waited)
                return self._send_without(add, remove, outcome.objects_refused, batch)
            if outcome.refused is not None:
                if outcome.refused.status != 429:
                    failures += 1
                self._keep(outcome, stops_run=stops_run(outcome.refused, failures))
                self._count_now(requests=1, throttled_seconds=waited)
                if outcome.refused.status == 429:
                    self._wait_for_partner(outcome.refused)
                else:
                    self._handle_error(outcome.refused, failures)
                continue
            return self._accept(outcome)

    def accepted(self, started: "Future[Attempt]") -> BatchResult | None:
        """The started attempt's answer if the partner accepted the batch, without retrying:
        for the batches still in flight when a run stops."""
        outcome = self._answer(started)
        if outcome.result is None:
            if outcome.refused is not None or outcome.too_large is not None:
                self._keep(outcome)
                self._count_now(requests=1, throttled_seconds=outcome.waited)
            return None
        return self._accept(outcome)

    def _keep(self, outcome: Attempt, *, stops_run: bool = False) -> None:
        """The attempt's requests and answers onto the run's page, if worth it."""
        if outcome.exchanges:
            self.exchange_log.keep(
                outcome.exchanges,
                batch=outcome.batch,
                attempt=outcome.number,
                failed_members=bool(outcome.result and outcome.result.failed),
                stops_run=stops_run,
            )

    def _accept(self, outcome: Attempt) -> BatchResult:
        """An accepted batch: its request and wait are counted with its checkpoint."""
        assert outcome.result is not None
        self._keep(outcome)
        self.throttled_in_a_row = 0
        self.uncounted["requests"] = self.uncounted.get("requests", 0) + outcome.result.requests
        self.uncounted["throttled_seconds"] = (
            self.uncounted.get("throttled_seconds", 0.0) + outcome.waited
        )
        return outcome.result

    def _answer(self, started: "Future[Attempt]") -> Attempt:
        """Wait for a sending thread's attempt, beating the heartbeat during long waits."""
        while True:
            try:
                return started.result(timeout=HEARTBEAT_EVERY_SECONDS)
            except FutureTimeout:
                self.beat()

    def _handle_error(self, exc: PartnerError, attempt: int) -> None:
        """Stop the run, or wait before the next attempt (5xx, network errors)."""
        label = self.partner.label
        if exc.auth:
            refuse_connection(self.connection, exc.message)
            raise StopRun(f"{label} refused the credentials: {exc.message}") from None
        if stops_run(exc, attempt):
            raise StopRun(
                f"{label} answered {exc.status or 'nothing'} ({exc.message})"
                f" after {attempt} attempt(s)."
            ) from None
        delay = backoff(attempt, exc)
        self._count_now(retries=1)
        record_event(
            self.run_id,
            Kind.RETRY,
            f"{label} answered {exc.status or 'nothing'} ({exc.message}); "
            f"attempt {attempt + 1} in {delay:.1f} s.",
            status=exc.status,
            attempt=attempt,
            seconds=round(delay, 2),
        )
        self.sleep(delay)

    def _wait_for_partner(self, exc: PartnerError) -> None:
        """A 429: wait for the partner's reset (or back off), without spending an attempt. Its
        headers went to the shared bucket with its lease (SendingThreads), so every worker on
        the connection waits for the reset, not just this run."""
        self.throttled += 1
        self.throttled_in_a_row += 1
        delay = backoff(self.throttled_in_a_row, exc)
        self._count_now(retries=1)
        record_event(
            self.run_id,
            Kind.THROTTLED,
            f"{self.partner.label} answered 429 ({exc.message}); trying again in {delay:.1f} s.",
            status=429,
            seconds=round(delay, 2),
        )
        self._wait_for_rate(delay)

    def _wait_for_rate(self, seconds: float, already: float = 0.0) -> None:
        """Sleep `seconds` for the partner's rate limit (`already` waited for a token), counted
        as throttled time, within the run's budget: past it, the run is interrupted and
        resumes from its last checkpoint a few minutes later."""
        budget = settings.COHORTSYNC_RUN_RATE_WAIT_SECONDS
        self.rate_waited += already
        if self.rate_waited + seconds > budget:
            raise Interrupted(
                f"{self.partner.label}'s rate limit kept this run waiting "
                f"{self.rate_waited / 60:.1f} min in all (a run waits at most "
                f"{budget / 60:g} min): it resumes from its last checkpoint in "
                f"{RESUME_AFTER_RATE_WAIT_SECONDS / 60:g} min.",
                resume_in=RESUME_AFTER_RATE_WAIT_SECONDS,
            )
        self.rate_waited += seconds
        self._count_now(throttled_seconds=seconds)
        self.sleep(seconds)

    def _note_wait(self, waited: float, what: str) -> None:
        if waited >= NOTABLE_WAIT_SECONDS:
            record_event(
                self.run_id,
                Kind.THROTTLED,
                f"Waited {waited:.1f} s for {what}.",
                seconds=round(waited, 2),
            )

    def _send_in_halves(
        self,
        add: list[Recipient],
        remove: list[Recipient],
        refusal: BatchTooLarge,
        batch: BatchNumber,
    ) -> BatchResult:
        """The partner refused the batch as too large and said (or we inferred) how many it
        takes: send this batch in smaller ones and remember the size on the connection, with
        an entry on its timeline, for every later run."""
        size = max(1, min(refusal.limit, len(add) + len(remove) - 1))
        if len(add) + len(remove) <= 1:
            raise StopRun(f"{self.partner.label} refuses even a batch of 1: {refusal.message}")
        if size < self.batch_size:
            # Said once, though the batches in flight beside this one hear the same refusal.
            self.batch_size = size
            note = (
                f"{refusal.message}: sending batches of {size:,} from now on. Change it in the "
                "connection's settings if the partner raises its limit."
            )
            learn_batch_size(self.connection, self.partner.batch_size_setting, size, note)
            record_event(self.run_id, Kind.RETRY, note, batch_size=size)
        merged = BatchResult(accepted=[], failed=[], requests=0, status=200)
        for items, is_add in ((add, True), (remove, False)):
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                result = self.finish(
                    None, add=chunk if is_add else [], remove=[] if is_add else chunk, batch=batch
                )
                merged.accepted += result.accepted
                merged.failed += result.failed
                merged.status = result.status
        return merged

    def _send_without(
        self,
        add: list[Recipient],
        remove: list[Recipient],
        refusal: ObjectsRefused,
        batch: BatchNumber,
    ) -> BatchResult:
        """The partner refused the whole batch for the objects it named: those fail with its
        reasons, and the others are sent again without them."""
        refused = {ref for ref, _ in refusal.failed}
        add = [recipient for recipient in add if recipient.ref not in refused]
        remove = [recipient for recipient in remove if recipient.ref not in refused]
        record_event(
            self.run_id,
            Kind.RETRY,
            f"{self.partner.label} refused the batch for {len(refused):,} member(s) "
            f"({refusal.message}); sending the other {len(add) + len(remove):,} again.",
            status=refusal.status,
        )
        if not add and not remove:
            return BatchResult(accepted=[], failed=list(refusal.failed), requests=0, status=400)
        result = self.finish(None, add=add, remove=remove, batch=batch)
        result.failed = [*refusal.failed, *result.failed]
        return result


def stops_run(exc: PartnerError, failures: int) -> bool:
    """Whether this refusal ends the run: the credentials refused, an answer that waiting will
    not change, or the batch's last attempt spent (a 429 never ends it: it is waited out)."""
    if exc.status == 429:
        return False
    return exc.auth or not exc.retryable or failures >= MAX_ATTEMPTS
