"""A run's pace: the connection's shared rate limit (a token bucket in Redis) and its shared
limit on requests in flight (leases in Redis), both shared by every run and worker of the
connection, as the sending threads use them; and the backoff between attempts. A request costs
two Redis round trips: its token and lease taken together, its lease given back together with
what the partner's answer said of its limit (connections/admission.py). Redis going away for a
moment (a restart, a pause) is waited out here."""

import contextlib
import random
import time
from collections.abc import Callable

import django_rq
import redis

from connections.admission import Admission
from connections.concurrency import ConcurrencyLimit, connection_slots_key
from connections.models import Connection
from connections.partners.base import Partner, RateLimitSignal
from connections.partners.http import PartnerError
from connections.ratelimit import TokenBucket, connection_bucket_key

MAX_BACKOFF_SECONDS = 60.0
# How long a run waits for Redis (the shared rate limit) to come back before it hands itself
# back to the queue, to resume from its last checkpoint once Redis is there again.
REDIS_OUTAGE_SECONDS = 120.0


class RedisOutage(Exception):
    """Redis stayed out of reach longer than a run waits for it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Redis out of reach for {seconds:.0f} s")
        self.seconds = seconds


class SharedPace:
    """The connection's token bucket and in-flight limit, for one run's sending threads (which
    wait with `pause`)."""

    def __init__(
        self, connection: Connection, partner: Partner, *, pause: Callable[[float], None]
    ) -> None:
        rate = partner.rate_limit(partner.config)
        client = django_rq.get_connection("default")
        self._pause = pause
        self.bucket = TokenBucket(
            client,
            connection_bucket_key(connection.pk),
            capacity=rate.requests,
            per_seconds=float(rate.seconds),
            sleep=pause,
        )
        self.slots = ConcurrencyLimit(
            client,
            connection_slots_key(connection.pk),
            partner.max_in_flight(partner.config),
            sleep=pause,
        )
        self.admission = Admission(self.bucket, self.slots, sleep=pause)

    def acquire(self) -> tuple[float, str]:
        """A token of the shared bucket and a slot among the connection's requests in flight,
        taken together (Admission.acquire: neither is held while waiting for the other): the
        seconds waited for the token, and the slot's lease (give it back with `release`).
        While Redis is out of reach (restarted, paused, a network blip), try again with
        backoff, up to REDIS_OUTAGE_SECONDS in all."""
        started, delay = time.monotonic(), 0.5
        while True:
            try:
                lease, waited = self.admission.acquire(max_wait=MAX_BACKOFF_SECONDS)
                return waited, lease
            except redis.RedisError:
                down = time.monotonic() - started
                if down >= REDIS_OUTAGE_SECONDS:
                    raise RedisOutage(down) from None
                self._pause(min(delay, REDIS_OUTAGE_SECONDS - down))
                delay = min(delay * 2, 10.0)

    def release(
        self, lease: str, signal: RateLimitSignal | None = None, *, others: int = 0
    ) -> None:
        """Give the slot back and, in the same round trip, teach the shared bucket what the
        partner's answer said of its limit, less the `others` requests this run may have on
        their way (`observe`). Without Redis, the lease expires by itself and the next answer
        teaches the bucket."""
        with contextlib.suppress(redis.RedisError):
            self.admission.release(lease, signal, in_flight=others)

    def observe(self, signal: RateLimitSignal | None, *, others: int = 0) -> None:
        """Teach the shared bucket what the partner said of its limit (a 429's headers: a
        request's answer is observed by `release`), less the `others` requests this run may
        have on their way; without Redis, the next answer will."""
        if signal is None:
            return
        with contextlib.suppress(redis.RedisError):
            self.bucket.observe(signal, in_flight=others)

    def in_flight_bound(self, signal: RateLimitSignal) -> int | None:
        """What the partner says remains, as a bound on a run's requests in flight; None when
        its limit is at least the connection's. The bucket paces the run then, and a partner
        refilling as fast says few remain whenever the budget is in full use: bounded by it,
        four runs on one connection used 92 % of it (bench/budget_use.py), unbounded 100 %."""
        if signal.remaining is None or self.bucket.partner_keeps_pace(signal):
            return None
        return signal.remaining


def backoff(attempt: int, exc: PartnerError) -> float:
    signal = exc.rate_limit
    if signal is not None and signal.reset_at is not None:
        # Braze says when the window resets; jitter spreads the workers that wait for it.
        delay = max(0.0, signal.reset_at - time.time()) + random.uniform(0, 0.5)  # noqa: S311
    else:
        delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
    return min(delay, MAX_BACKOFF_SECONDS)
