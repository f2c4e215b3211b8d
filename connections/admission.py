"""A request's admission to a partner: a token of the connection's bucket (connections/
ratelimit.py) and a lease among its requests in flight (connections/concurrency.py), taken in
one Redis round trip; the lease given back, with what the partner's headers said of its limit,
in one more.

Taken apart, they cost four round trips a request (take a token, take a lease, give the lease
back, observe the headers), each a few dozen microseconds of a sending thread's CPU under the
interpreter lock. The scripts here are built from the same Lua functions as the bucket's and
the lease's own, so each rule is written once.
"""

import time
from collections.abc import Callable

from connections import concurrency
from connections.concurrency import (
    FIRST_POLL_SECONDS,
    LEASE_LUA,
    LONGEST_POLL_SECONDS,
    ConcurrencyLimit,
    new_lease_id,
)
from connections.partners.base import RateLimitSignal
from connections.ratelimit import BUCKET_LUA, CLOCK_LUA, RateLimitTimeout, TokenBucket, as_text

# What _TAKE answers when the bucket has a token but every lease is out.
_ALL_LEASES_OUT = "busy"

# KEYS[1] the bucket hash, KEYS[2] the lease set. ARGV: capacity, per_seconds, in-flight limit,
# lease seconds, lease id. Answers "0" (token and lease taken), the seconds until a token is
# there (neither taken), or "busy" (a token is there, no lease: neither taken).
_TAKE = (
    CLOCK_LUA
    + BUCKET_LUA
    + LEASE_LUA
    + """
local b = bucket_load(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)
local answer = bucket_wait(b, 1, now)
if answer == 0 then
  if lease_free(KEYS[2], tonumber(ARGV[3]), now) then
    b.tokens = b.tokens - 1
    lease_take(KEYS[2], tonumber(ARGV[4]), ARGV[5], now)
  else
    answer = 'busy'
  end
end
bucket_save(b, now)
return tostring(answer)
"""
)

# KEYS[1] the bucket hash, KEYS[2] the lease set. ARGV: lease id, capacity, per_seconds, then
# the partner's remaining, reset_at (or ""), the requests in flight it had not counted, its
# limit (or ""), as TokenBucket.observe_args gives them.
_RELEASE_AND_OBSERVE = (
    CLOCK_LUA
    + BUCKET_LUA
    + """
redis.call('ZREM', KEYS[2], ARGV[1])
local b = bucket_load(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), now)
bucket_observe(b, tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]) or 0,
  tonumber(ARGV[7]), now)
bucket_save(b, now)
return 0
"""
)


class Admission:
    """One token of `bucket` and one lease of `slots` per request, taken and given back
    together. Both must be on the same Redis client (and, under Redis Cluster, slot)."""

    def __init__(
        self,
        bucket: TokenBucket,
        slots: ConcurrencyLimit,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bucket = bucket
        self.slots = slots
        self._sleep = sleep
        self._take = slots.redis.register_script(_TAKE)
        self._release_and_observe = slots.redis.register_script(_RELEASE_AND_OBSERVE)

    def acquire(self, *, max_wait: float) -> tuple[str, float]:
        """A lease (give it back with `release`) and the seconds waited for a token.

        The token and the lease are taken together or not at all, so no request holds one
        while it waits for the other: without a token it sleeps what the bucket says a token
        takes (those waits count towards `max_wait`, past which RateLimitTimeout); with a token
        but every lease out it polls, FIRST_POLL_SECONDS doubling to LONGEST_POLL_SECONDS, and
        the token stays in the bucket for whoever can use it now. A token is thus spent only
        when its request can go out, so requests that waited for a lease never leave together
        in a burst the bucket did not grant."""
        lease = new_lease_id()
        keys = [self.bucket.key, self.slots.key]
        args = [*self.bucket.shape_args(), self.slots.limit, concurrency.LEASE_SECONDS, lease]
        waited, poll = 0.0, FIRST_POLL_SECONDS
        while True:
            answer = as_text(self._take(keys=keys, args=args))
            if answer == _ALL_LEASES_OUT:
                self._sleep(poll)
                poll = min(poll * 2, LONGEST_POLL_SECONDS)
                continue
            wait = float(answer)
            if wait <= 0:
                return lease, waited
            if waited + wait > max_wait:
                raise RateLimitTimeout(self.bucket.key, waited, wait)
            # Another worker may take the refill first; the loop simply asks again.
            self._sleep(wait)
            waited += wait

    def release(
        self, lease: str, signal: RateLimitSignal | None = None, *, in_flight: int = 0
    ) -> None:
        """Give the lease back and, in the same round trip, correct the bucket from what the
        partner's answer said of its limit (TokenBucket.observe: `in_flight` are the requests on
        their way that it had not counted yet). Without a signal, the lease alone."""
        observed = None if signal is None else self.bucket.observe_args(signal, in_flight)
        if observed is None:
            self.slots.release(lease)
            return
        self._release_and_observe(
            keys=[self.bucket.key, self.slots.key],
            args=[lease, *self.bucket.shape_args(), *observed],
        )
