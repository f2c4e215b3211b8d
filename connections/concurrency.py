"""A per-connection limit on requests in flight, in Redis, shared by every worker and every run
of the connection (beside its token bucket, connections/ratelimit.py).

The bucket bounds how many requests start per second; this bounds how many are open at once,
the connection's "maximum concurrent requests". Each request holds a lease, a member of one
sorted set scored by when it expires, so a worker killed mid-request gives its leases back by
itself once they expire. A Lua script takes a lease atomically and reads Redis `TIME`, so the
workers' clocks never matter; its rules are Lua functions (LEASE_LUA) that the script taking a
token and a lease together (connections/admission.py) is built from too.
"""

import itertools
import os
import secrets
import socket
import time
from collections.abc import Callable

import redis

from connections.ratelimit import CLOCK_LUA

# `lease_room` forgets the leases expired by now and says how many of `limit` are free;
# `lease_take` adds one that expires `seconds` from now (the set outlives its last lease by 1 s).
LEASE_LUA = """
local function lease_room(key, limit, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return limit - redis.call('ZCARD', key)
end

local function lease_take(key, seconds, id, now)
  redis.call('ZADD', key, now + seconds, id)
  redis.call('PEXPIRE', key, math.ceil(seconds * 1000) + 1000)
end
"""
# KEYS[1] the lease set. ARGV: limit, lease seconds, lease id. 1 = taken, 0 = all in use.
_TAKE = (
    CLOCK_LUA
    + LEASE_LUA
    + """
if lease_room(KEYS[1], tonumber(ARGV[1]), now) < 1 then
  return 0
end
lease_take(KEYS[1], tonumber(ARGV[2]), ARGV[3], now)
return 1
"""
)
# Longer than a request may take (connect 5 s, read 30 s), so no lease of a live request expires.
LEASE_SECONDS = 60.0
# Polls while every slot is taken: short first (a slot frees within a request's latency).
FIRST_POLL_SECONDS = 0.002
LONGEST_POLL_SECONDS = 0.05


class _LeaseIds:
    """Lease ids unique across hosts, processes and threads, for a counter's price instead of a
    uuid4 per request: this process's host, pid and a random part, made once (again in a forked
    child: an RQ work-horse must not count on from its parent's ids), then a count."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._prefix = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}:"
        # next() on itertools.count is atomic under the GIL: no two threads get the same.
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter)}"


new_lease_id = _LeaseIds().next


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
        self.redis = redis_client
        self._sleep = sleep
        self._take = redis_client.register_script(_TAKE)

    def acquire(self) -> tuple[str, float]:
        """A lease (give it back with `release`) and the seconds waited for it."""
        lease, waited, poll = new_lease_id(), 0.0, FIRST_POLL_SECONDS
        while not int(self._take(keys=[self.key], args=[self.limit, LEASE_SECONDS, lease])):
            self._sleep(poll)
            waited += poll
            poll = min(poll * 2, LONGEST_POLL_SECONDS)
        return lease, waited

    def release(self, lease: str) -> None:
        self.redis.zrem(self.key, lease)

    def in_use(self) -> int:
        """Leases out now (expired ones included until the next take)."""
        return int(self.redis.zcard(self.key))
