"""A per-connection limit on requests in flight, in Redis, shared by every worker and every run
of the connection (beside its token bucket, connections/ratelimit.py).

The bucket bounds how many requests start per second; this bounds how many are open at once,
the connection's "maximum concurrent requests". Each request holds a lease, a member of one
sorted set scored by when it expires, so a worker killed mid-request gives its leases back by
itself once they expire. One Lua script takes a lease atomically and reads Redis `TIME`, so the
workers' clocks never matter.
"""

import time
import uuid
from collections.abc import Callable

import redis

# KEYS[1] the lease set. ARGV: limit, lease seconds, lease id. 1 = taken, 0 = all in use.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
return 1
"""
# Longer than a request may take (connect 5 s, read 30 s), so no lease of a live request expires.
LEASE_SECONDS = 60.0
# Polls while every slot is taken: short first (a slot frees within a request's latency).
FIRST_POLL_SECONDS = 0.002
LONGEST_POLL_SECONDS = 0.05


def connection_slots_key(connection_id: int) -> str:
    return f"cohortsync:inflight:connection:{connection_id}"


class ConcurrencyLimit:
    """At most `limit` leases out at once under `key`."""

    def __init__(
        self,
        redis_client: redis.Redis,
        key: str,
        limit: int,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError("A concurrency limit needs limit >= 1.")
        self.key = key
        self.limit = limit
        self._redis = redis_client
        self._sleep = sleep
        self._take = redis_client.register_script(_TAKE)

    def acquire(self) -> tuple[str, float]:
        """A lease (give it back with `release`) and the seconds waited for it."""
        lease, waited, poll = uuid.uuid4().hex, 0.0, FIRST_POLL_SECONDS
        while not int(self._take(keys=[self.key], args=[self.limit, LEASE_SECONDS, lease])):
            self._sleep(poll)
            waited += poll
            poll = min(poll * 2, LONGEST_POLL_SECONDS)
        return lease, waited

    def release(self, lease: str) -> None:
        self._redis.zrem(self.key, lease)

    def in_use(self) -> int:
        """Leases out now (expired ones included until the next take)."""
        return int(self._redis.zcard(self.key))
