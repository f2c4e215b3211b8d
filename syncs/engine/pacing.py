"""A run's pace: the connection's shared rate limit (a token bucket in Redis) and its shared
limit on requests in flight (leases in Redis), both shared by every run and worker of the
connection, as the sending threads use them; and the backoff between attempts. The sending
threads wait at the run's admission desk (connections/admission_desk.py), whose one thread takes
the tokens and leases of every waiting request in one Redis round trip and gives back the
answered ones' leases, with what the partner said of its limit, in the same trip. Redis going
away for a moment (a restart, a pause) is waited out there, up to REDIS_OUTAGE_SECONDS."""

import random
import time
from collections.abc import Callable

import django_rq

from connections.admission import Admission
from connections.admission_desk import AdmissionDesk
from connections.concurrency import ConcurrencyLimit, connection_slots_key
from connections.models import Connection
from connections.partners.base import Partner, RateLimitSignal
from connections.partners.http import PartnerError
from connections.ratelimit import TokenBucket, connection_bucket_key

MAX_BACKOFF_SECONDS = 60.0
# How long a run waits for Redis (the shared rate limit) to come back before it hands itself
# back to the queue, to resume from its last checkpoint once Redis is there again.
REDIS_OUTAGE_SECONDS = 120.0


class SharedPace:
    """The connection's token bucket and in-flight limit, for one run's sending threads (which
    wait with `pause`)."""

    def __init__(
        self, connection: Connection, partner: Partner, *, pause: Callable[[float], None]
    ) -> None:
        rate = partner.rate_limit(partner.config)
        client = django_rq.get_connection("default")
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
        self.desk = AdmissionDesk(
            Admission(self.bucket, self.slots),
            max_wait=MAX_BACKOFF_SECONDS,
            outage_seconds=REDIS_OUTAGE_SECONDS,
            pause=pause,
        )

    def acquire(self) -> tuple[str, float]:
        """A token of the shared bucket and a slot among the connection's requests in flight,
        taken together at the run's admission desk (neither is held while waiting for the
        other): the slot's lease (give it back with `release`) and the seconds waited for the
        token. While Redis is out of reach, the desk tries again with backoff, up to
        REDIS_OUTAGE_SECONDS, then raises RedisOutage."""
        return self.desk.acquire()

    def release(self, lease: str, signal: RateLimitSignal | None = None) -> None:
        """Give the slot back and teach the shared bucket what the partner's answer (a 429's
        too) said of its limit, less the requests this run still has on their way
        (AdmissionDesk.release); both go with the desk's next round trip. Without Redis, the
        lease expires by itself and the next answer teaches the bucket."""
        self.desk.release(lease, signal)

    def close(self) -> None:
        """Give back the leases still held by the desk and stop its thread."""
        self.desk.close()

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
