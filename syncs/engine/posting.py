"""A run's sending threads: each attempt at a batch waits at the connection's shared pace for its
token and lease, posts, and reads the partner's rate-limit headers. No database here, and no
decision about what an answer means: syncs/engine/sending.py takes the attempts' answers on the
run's thread and retries, splits or stops there.

The threads count what the run's window needs: its attempts not yet answered (waiting for the
pace, or posted), and the partner's answer time."""

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from connections.admission_desk import RedisOutage
from connections.models import Connection
from connections.partners.base import BatchResult, Partner, RateLimitSignal, Recipient
from connections.partners.exchanges import Exchange, recording
from connections.partners.http import BatchTooLarge, ObjectsRefused, PartnerError
from connections.ratelimit import RateLimitTimeout
from core.egress_client import EgressClient
from syncs.engine.exchanges import BatchNumber
from syncs.engine.pacing import SharedPace

# Well under the reaper's 90 s: a run waiting this long for an answer beats its heartbeat.
HEARTBEAT_EVERY_SECONDS = 15.0


@dataclass
class Attempt:
    """One try at a batch: the partner's answer or why there was none, and the seconds spent
    waiting for the shared rate limit first; which batch and attempt it was, and the requests it
    made with their answers (kept on the run's page when worth it: syncs/engine/exchanges.py)."""

    batch: BatchNumber
    number: int = 0
    waited: float = 0.0
    exchanges: list[Exchange] = field(default_factory=list)
    result: BatchResult | None = None
    refused: PartnerError | None = None
    too_large: BatchTooLarge | None = None
    objects_refused: ObjectsRefused | None = None
    no_token: RateLimitTimeout | None = None
    # Seconds Redis stayed out of reach before this attempt gave up waiting for a token.
    redis_down: float | None = None


class SendingThreads:
    """Up to `in_flight` attempts at once on threads of their own, for one partner connection:
    `submit` one, `wait_for_an_answer` when the run's window is full."""

    def __init__(
        self,
        *,
        connection: Connection,
        partner: Partner,
        cohort_label: str,
        in_flight: int,
        pause: Callable[[float], None],
    ) -> None:
        self.partner = partner
        self.cohort_label = cohort_label
        self._threads = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="send")
        # One client for the run, shared by its sending threads: keep-alive connections to the
        # partner, each taken by one request at a time.
        self.client = EgressClient()
        # Sending threads wait for the bucket with a plain `pause`: the heartbeat is a database
        # write, beaten by the thread that waits for their answer.
        self.pace = SharedPace(connection, partner, pause=pause)
        # The requests the partner last said remain in its window, which bound the run's
        # requests in flight (None: it does not say, or its limit is at least the connection's
        # and the shared bucket alone paces the run: SharedPace.in_flight_bound).
        self.remaining: int | None = None
        # This run's requests answered, and their time.
        self.answered = 0
        self.answer_seconds = 0.0
        self._answered_lock = threading.Lock()
        # This run's attempts handed to a sending thread and not yet done (waiting for a token
        # or a lease, or posted), and the condition the run waits on for one to finish.
        self.unanswered = 0
        self._answers = threading.Condition()

    def close(self) -> None:
        """Let the attempts under way finish, then give back what the pace still holds."""
        try:
            self._threads.shutdown(wait=True, cancel_futures=True)
        finally:
            self.pace.close()
            self.client.close()

    def latency_ms(self) -> int | None:
        """The partner's average answer time so far, None before its first answer."""
        with self._answered_lock:
            if not self.answered:
                return None
            return round(1000 * self.answer_seconds / self.answered)

    def submit(
        self,
        add: list[Recipient],
        remove: list[Recipient],
        batch: BatchNumber,
        options: dict[str, Any],
    ) -> "Future[Attempt]":
        """An attempt at the batch on a sending thread."""
        with self._answers:
            self.unanswered += 1
        attempt = self._threads.submit(self._attempt, add, remove, batch, options)
        attempt.add_done_callback(self._one_answered)
        return attempt

    def _one_answered(self, _attempt: "Future[Attempt]") -> None:
        with self._answers:
            self.unanswered -= 1
            self._answers.notify()

    def wait_for_an_answer(self, *, below: int, beat: Callable[[], None]) -> None:
        """Wait until fewer than `below` attempts are unanswered, whichever finishes first,
        beating the heartbeat during long waits."""
        with self._answers:
            while not self._answers.wait_for(
                lambda: self.unanswered < below, timeout=HEARTBEAT_EVERY_SECONDS
            ):
                beat()

    def _attempt(
        self,
        add: list[Recipient],
        remove: list[Recipient],
        batch: BatchNumber,
        options: dict[str, Any],
    ) -> Attempt:
        """Wait for a token, post the batch (its requests and answers noted, in memory), read
        the rate-limit headers."""
        try:
            lease, waited = self.pace.acquire()
        except RateLimitTimeout as timeout:
            return Attempt(batch, no_token=timeout)
        except RedisOutage as outage:
            return Attempt(batch, redis_down=outage.seconds)
        # A batch's attempts follow one another: only one thread counts them at a time.
        attempt = Attempt(batch, batch.next_attempt(), waited)
        posted = time.perf_counter()
        result: BatchResult | None = None
        signal: RateLimitSignal | None = None
        try:
            with recording() as attempt.exchanges:
                result = self.partner.send_batch(
                    cohort_label=self.cohort_label,
                    add=add,
                    remove=remove,
                    options=options,
                    client=self.client,
                )
            signal = result.rate_limit
        except BatchTooLarge as too_large:
            attempt.too_large = too_large
            return attempt
        except ObjectsRefused as refused:
            attempt.objects_refused = refused
            return attempt
        except PartnerError as exc:
            # A 429's headers too: every worker on the connection then waits for the reset.
            signal = exc.rate_limit
            attempt.refused = exc
            return attempt
        finally:
            with self._answered_lock:
                self.answered += 1
                self.answer_seconds += time.perf_counter() - posted
            # The slot back and the answer's rate-limit headers observed on the pace's next
            # round trip, less the run's requests still on their way then.
            self.pace.release(lease, signal)
        if signal is not None:
            self.remaining = self.pace.in_flight_bound(signal)
        attempt.result = result
        return attempt
