"""Send one batch to the partner: under the connection's shared rate limit, retried on 429,
5xx and network errors with backoff that honours the partner's reset time, split in halves when
the partner says the batch is too large. A refused credential stops the run."""

import random
import time
from collections.abc import Callable
from typing import Any

import django_rq
import requests

from connections.models import Connection
from connections.partners.base import BatchResult, BatchTooLarge, Partner, PartnerError, Recipient
from connections.ratelimit import RateLimitTimeout, TokenBucket, connection_bucket_key
from syncs.models import SyncRun
from syncs.run_events import Kind, record_event
from syncs.run_outcome import refuse_connection

MAX_ATTEMPTS = 6
MAX_BACKOFF_SECONDS = 60.0
# Waits for the shared bucket shorter than this are pacing, not news: only the total is kept.
NOTABLE_WAIT_SECONDS = 1.0


class StopRun(Exception):
    """The run cannot go on; `status` is how it ends."""

    def __init__(self, message: str, status: str = SyncRun.Status.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class BatchSender:
    """Sends a run's batches for one partner connection; `count` adds to the run's counters."""

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
    ) -> None:
        self.run_id = run_id
        self.connection = connection
        self.partner = partner
        self.cohort_label = cohort_label
        self.options = options
        self.count = count
        self.sleep = sleep
        self.session = requests.Session()
        config = partner.config
        self.bucket = TokenBucket(
            django_rq.get_connection("default"),
            connection_bucket_key(connection.pk),
            capacity=getattr(config, "rate_limit_requests", 100),
            per_seconds=float(getattr(config, "rate_limit_seconds", 1)),
            sleep=sleep,
        )
        self.batch_size = partner.max_batch_size()
        # Requests and waits of accepted batches, added to the counters by the engine's
        # checkpoint: one UPDATE per batch instead of two.
        self.uncounted: dict[str, float] = {}

    def take_uncounted(self) -> dict[str, float]:
        """What accepted sends have not counted yet, for the checkpoint to add; then forgotten."""
        taken, self.uncounted = self.uncounted, {}
        return taken

    def _count_now(self, **counts: float) -> None:
        """Count at once (a failed or split send), with whatever accepted sends left uncounted."""
        for name, value in self.take_uncounted().items():
            counts[name] = counts.get(name, 0) + value
        self.count(**counts)

    def send(self, *, add: list[Recipient], remove: list[Recipient]) -> BatchResult:
        """One batch, retried on 429, 5xx and network errors with backoff; auth stops the run."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                waited = self.bucket.acquire(1, max_wait=MAX_BACKOFF_SECONDS)
            except RateLimitTimeout as timeout:
                # The bucket is empty for longer than we wait at once (a partner's reset far
                # away): wait our longest, then ask again, a bounded number of times.
                pause = 0.0 if attempt == MAX_ATTEMPTS else min(timeout.needed, MAX_BACKOFF_SECONDS)
                self.sleep(pause)
                self._count_now(throttled_seconds=timeout.waited + pause)
                self._note_wait(timeout.waited + pause, "the connection's shared rate limit")
                continue
            self._note_wait(waited, "the connection's shared rate limit")
            try:
                result = self.partner.send_batch(
                    cohort_label=self.cohort_label,
                    add=add,
                    remove=remove,
                    options=self.options,
                    session=self.session,
                )
            except BatchTooLarge as too_large:
                self._count_now(requests=1, throttled_seconds=waited)
                return self._send_in_halves(add, remove, too_large.limit)
            except PartnerError as exc:
                self._count_now(requests=1, throttled_seconds=waited)
                self._handle_error(exc, attempt)
                continue
            self.uncounted["requests"] = self.uncounted.get("requests", 0) + result.requests
            self.uncounted["throttled_seconds"] = (
                self.uncounted.get("throttled_seconds", 0.0) + waited
            )
            if result.rate_limit is not None:
                self.bucket.observe(result.rate_limit)
            return result
        raise StopRun(
            f"{self.partner.label}'s rate limit left no room for this batch after "
            f"{MAX_ATTEMPTS} attempts."
        )

    def _handle_error(self, exc: PartnerError, attempt: int) -> None:
        """Stop the run, or wait before the next attempt."""
        label = self.partner.label
        if exc.auth:
            refuse_connection(self.connection, exc.message)
            raise StopRun(f"{label} refused the credentials: {exc.message}") from None
        if not exc.retryable or attempt == MAX_ATTEMPTS:
            raise StopRun(
                f"{label} answered {exc.status or 'nothing'} ({exc.message})"
                f" after {attempt} attempt(s)."
            ) from None
        if exc.status == 429 and exc.rate_limit is not None:
            # Every worker on this connection waits for the partner's reset, not just us.
            self.bucket.observe(exc.rate_limit)
        delay = backoff(attempt, exc)
        throttled = exc.status == 429
        self._count_now(retries=1, throttled_seconds=delay if throttled else 0.0)
        record_event(
            self.run_id,
            Kind.THROTTLED if throttled else Kind.RETRY,
            f"{label} answered {exc.status or 'nothing'} ({exc.message}); "
            f"attempt {attempt + 1} in {delay:.1f} s.",
            status=exc.status,
            attempt=attempt,
            seconds=round(delay, 2),
        )
        self.sleep(delay)

    def _note_wait(self, waited: float, what: str) -> None:
        if waited >= NOTABLE_WAIT_SECONDS:
            record_event(
                self.run_id,
                Kind.THROTTLED,
                f"Waited {waited:.1f} s for {what}.",
                seconds=round(waited, 2),
            )

    def _send_in_halves(
        self, add: list[Recipient], remove: list[Recipient], limit: int
    ) -> BatchResult:
        """The partner said how many recipients it takes: send this batch in smaller ones and
        remember the size on the connection for every later run."""
        size = max(1, min(limit, (len(add) + len(remove)) // 2))
        if size >= len(add) + len(remove):
            raise StopRun(f"{self.partner.label} refuses even a batch of {size}.")
        self.batch_size = size
        config = dict(self.connection.config, batch_size=size)
        Connection.objects.filter(pk=self.connection.pk).update(config=config)
        record_event(
            self.run_id,
            Kind.RETRY,
            f"{self.partner.label} takes at most {limit:,} per request; "
            f"sending batches of {size:,} from now on.",
            batch_size=size,
        )
        merged = BatchResult(accepted=[], failed=[], requests=0, status=200)
        for items, is_add in ((add, True), (remove, False)):
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                result = self.send(add=chunk if is_add else [], remove=[] if is_add else chunk)
                merged.accepted += result.accepted
                merged.failed += result.failed
                merged.status = result.status
        return merged


def backoff(attempt: int, exc: PartnerError) -> float:
    signal = exc.rate_limit
    if signal is not None and signal.reset_at is not None:
        # Braze says when the window resets; jitter spreads the workers that wait for it.
        delay = max(0.0, signal.reset_at - time.time()) + random.uniform(0, 0.5)  # noqa: S311
    else:
        delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
    return min(delay, MAX_BACKOFF_SECONDS)
