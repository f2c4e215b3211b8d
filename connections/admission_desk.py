"""Where a run's sending threads wait for their admissions to the partner: one thread, the
desk's clerk, makes the Redis round trips (connections/admission.py) for all of them.

Each trip takes a token and a lease for every request waiting at that moment, and gives back the
leases of the requests answered since the trip before, with what their answers said of the
partner's limit. Under load the requests that queue while one trip is under way all go in the
next, and a lease given back rides with the next take, so a request costs well under one round
trip, and none of them on a sending thread: a round trip made by dozens of threads cost each a
few hundred microseconds of CPU waiting to take the interpreter lock back.

Requests are admitted in the order they came, never more than the shared bucket and the shared
in-flight limit allow at the moment of the trip, so every run and worker of the connection still
shares its budget as before. When every lease of the connection is out, the clerk tries again
after a poll's interval (2 ms, doubling up to 50 ms: the leases free within a request's answer
time), and at once when its own run gives one back meanwhile. A lease given back with no request
waiting is held at most RELEASE_LINGER_SECONDS for one to carry it. Redis out of reach is waited
out here, up to the desk's `outage_seconds` per request, after which that request's `acquire`
raises RedisOutage.
"""

import threading
import time
from collections import deque
from collections.abc import Callable

import redis

from connections.admission import Admission
from connections.concurrency import FIRST_POLL_SECONDS, LONGEST_POLL_SECONDS
from connections.partners.base import RateLimitSignal
from connections.ratelimit import RateLimitTimeout

# How long a lease given back waits for a request to take the trip with it before the clerk
# takes the trip for it alone: a few ms of a lease that no one else of the run needs.
RELEASE_LINGER_SECONDS = 0.005
# Backoff while Redis is out of reach: first, and longest.
FIRST_OUTAGE_PAUSE_SECONDS = 0.5
LONGEST_OUTAGE_PAUSE_SECONDS = 10.0


class RedisOutage(Exception):
    """Redis stayed out of reach longer than a request waits for it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Redis out of reach for {seconds:.0f} s")
        self.seconds = seconds


class _Ticket:
    """One request waiting at the desk; `settle` ends its wait with a lease or an error."""

    __slots__ = ("_settled", "came", "error", "lease", "token_waits_before", "waited")

    def __init__(self, came: float, token_waits_before: float) -> None:
        self.came = came
        self.token_waits_before = token_waits_before
        self.lease = ""
        # The desk's waits for a token while this request was next in line.
        self.waited = 0.0
        self.error: BaseException | None = None
        # A held lock is the cheapest thing a thread can wait on and another wake.
        self._settled = threading.Lock()
        self._settled.acquire()

    def settle(self, lease: str = "", error: BaseException | None = None) -> None:
        self.lease, self.error = lease, error
        self._settled.release()

    def wait(self) -> tuple[str, float]:
        self._settled.acquire()
        if self.error is not None:
            raise self.error
        return self.lease, self.waited


class AdmissionDesk:
    """A token and a lease per request of one run, taken for all its waiting requests at once.

    `max_wait`: the longest a request waits for tokens, past which its `acquire` raises
    RateLimitTimeout; `outage_seconds`: the longest it waits for Redis, past which RedisOutage.
    `pause` sleeps the clerk (waits for a token, polls for a lease, backoff while Redis is
    away)."""

    def __init__(
        self,
        admission: Admission,
        *,
        max_wait: float,
        outage_seconds: float,
        pause: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.admission = admission
        self.max_wait = max_wait
        self.outage_seconds = outage_seconds
        self._pause = pause
        self._clock = clock
        self._wake = threading.Condition()
        self._queue: deque[_Ticket] = deque()
        self._give_back: list[str] = []
        # What the answers since the last trip said of the partner's limit, observed on the next.
        self._signals: list[RateLimitSignal] = []
        # Leases admitted and not given back yet: the run's requests on their way.
        self._held = 0
        # Seconds the clerk has slept for tokens in all: a request has waited what grew since it
        # came, which `max_wait` bounds.
        self._token_waits = 0.0
        # The clerk waits for one of this run's leases to come back: every lease is out.
        self._awaiting_lease = False
        self._closed = False
        self._broken: BaseException | None = None
        self._clerk: threading.Thread | None = None
        # Round trips made, and requests admitted: what the desk saves shows in their ratio.
        self.trips = 0
        self.admitted = 0

    @property
    def waiting(self) -> int:
        """Requests waiting at the desk now."""
        return len(self._queue)

    def acquire(self) -> tuple[str, float]:
        """A lease (give it back with `release`) and the seconds the desk waited for a token
        while this request was next in line, so that a run's waits add up to the time the
        bucket held it back, not to that time once per request waiting; RateLimitTimeout or
        RedisOutage as the class says."""
        with self._wake:
            if self._broken is not None:
                raise self._broken
            if self._closed:
                raise RuntimeError("The admission desk is closed.")
            ticket = _Ticket(self._clock(), self._token_waits)
            self._queue.append(ticket)
            if self._clerk is None:
                self._clerk = threading.Thread(
                    target=self._serve, name="admission-desk", daemon=True
                )
                self._clerk.start()
            self._wake.notify()
        return ticket.wait()

    def release(self, lease: str, signal: RateLimitSignal | None = None) -> None:
        """Give the lease back on the next trip, with what the partner's answer said of its
        limit if it said anything. The trip corrects the bucket from every answer's word since
        the trip before (TokenBucket.observe only ever lowers it: the answers come back in any
        order, and an older one may say more remain), each less every request of the run still
        on its way then, those admitted since the answer came included: the partner had not
        counted them."""
        with self._wake:
            self._give_back.append(lease)
            if signal is not None:
                self._signals.append(signal)
            if self._awaiting_lease or (len(self._give_back) == 1 and not self._queue):
                self._wake.notify()

    def close(self) -> None:
        """Give back what is left to give and stop the clerk. Requests still waiting (none, once
        the run's sending threads are done) are refused."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            clerk = self._clerk
        if clerk is not None:
            clerk.join(timeout=LONGEST_OUTAGE_PAUSE_SECONDS + 1)

    def _serve(self) -> None:
        try:
            self._serve_until_closed()
        except BaseException as exc:
            with self._wake:
                self._broken = exc
                while self._queue:
                    self._queue.popleft().settle(error=exc)
            raise

    def _serve_until_closed(self) -> None:
        poll = FIRST_POLL_SECONDS
        down_since: float | None = None
        outage_pause = FIRST_OUTAGE_PAUSE_SECONDS
        while True:
            with self._wake:
                while not (self._queue or self._give_back or self._closed):
                    self._wake.wait()
                if not self._queue and not self._closed:
                    # A lease given back waits a moment for a request to take the trip with it.
                    self._wake.wait(RELEASE_LINGER_SECONDS)
                if self._closed:
                    while self._queue:
                        self._queue.popleft().settle(
                            error=RuntimeError("The admission desk is closed.")
                        )
                    if not self._give_back:
                        return
                wanted = len(self._queue)
                give_back, self._give_back = self._give_back, []
                signals, self._signals = self._signals, []
                self._held -= len(give_back)
                observe_args = self.admission.bucket.observe_args
                observed = [
                    args for signal in signals if (args := observe_args(signal, self._held))
                ]
            try:
                exchanged = self.admission.exchange(wanted, give_back, observed)
            except redis.RedisError:
                if self._closed:
                    return  # the leases expire by themselves
                with self._wake:
                    self._give_back[:0] = give_back
                    self._held += len(give_back)
                down_since = self._clock() if down_since is None else down_since
                self._refuse_past_outage(down_since)
                self._pause(outage_pause)
                outage_pause = min(outage_pause * 2, LONGEST_OUTAGE_PAUSE_SECONDS)
                continue
            down_since, outage_pause = None, FIRST_OUTAGE_PAUSE_SECONDS
            self.trips += 1
            self._admit(exchanged.leases)
            if len(exchanged.leases) == wanted:
                poll = FIRST_POLL_SECONDS
            elif exchanged.busy:
                # A lease frees within a request's answer time: poll, short first; at once when
                # this run gives one back.
                if not self._wait_for_own_lease(poll):
                    poll = min(poll * 2, LONGEST_POLL_SECONDS)
            else:
                poll = FIRST_POLL_SECONDS
                if self._refuse_past_max_wait(exchanged.wait):
                    with self._wake:
                        self._queue[0].waited += exchanged.wait
                    self._pause(exchanged.wait)
                    self._token_waits += exchanged.wait

    def _wait_for_own_lease(self, poll: float) -> bool:
        """Wait up to `poll` seconds for a lease while every lease is out: until this run gives
        one back (woken by `release`) if it holds any, else (the leases are other runs') the
        pause; whether this run gave one back."""
        with self._wake:
            if self._give_back:
                return True
            if self._held:
                self._awaiting_lease = True
                try:
                    self._wake.wait(poll)
                finally:
                    self._awaiting_lease = False
                return bool(self._give_back)
        self._pause(poll)
        return False

    def _admit(self, leases: list[str]) -> None:
        """The oldest waiting requests get the leases, in the order they came."""
        with self._wake:
            for lease in leases:
                self._queue.popleft().settle(lease)
            self.admitted += len(leases)
            self._held += len(leases)

    def _refuse_past_max_wait(self, wait: float) -> bool:
        """Refuse the requests that would wait past `max_wait` for the next token (another
        worker may take the refill first: those left ask again after `wait`); whether any
        are left."""
        with self._wake:
            for ticket in list(self._queue):
                if self._token_waits - ticket.token_waits_before + wait > self.max_wait:
                    self._queue.remove(ticket)
                    timeout = RateLimitTimeout(self.admission.bucket.key, ticket.waited, wait)
                    ticket.settle(error=timeout)
            return bool(self._queue)

    def _refuse_past_outage(self, down_since: float) -> None:
        """Refuse the requests that have waited `outage_seconds` for Redis to come back."""
        now = self._clock()
        with self._wake:
            for ticket in list(self._queue):
                down = now - max(ticket.came, down_since)
                if down >= self.outage_seconds:
                    self._queue.remove(ticket)
                    ticket.settle(error=RedisOutage(down))
