"""A per-connection token bucket in Redis, shared by every worker and every sync on it.

All state lives in one Redis hash changed only by one Lua script, so refill and take are atomic
across workers, and the script reads Redis `TIME` so the workers' clocks never matter.
"""

import time
from collections.abc import Callable

import redis

from connections.partners.base import RateLimitSignal

# KEYS[1] the bucket hash. ARGV: mode ("take" | "observe"), capacity, per_seconds, then
# for take: tokens wanted; for observe: remaining (or ""), reset_at (or ""), the requests on
# their way that the partner had not counted yet, and the partner's announced limit (or "").
# Fields: tokens, ts (when tokens was computed; may lie in the future while blocked), blocked
# (no tokens before this), held (no refill before this). Returns the seconds to wait as a
# string ("0" = granted): Redis would truncate a Lua number to an integer.
#
# What the partner says remains only ever lowers the tokens. Whether the refill goes on
# depends on its limit: one below the capacity (or unknown) means the connection's setting is
# above the partner's, so until its reset what it says remains is all there is (held). One at
# the capacity refills as fast as the bucket does: a partner that refills continuously (the
# simulator) announces as its reset the moment it is full again, a second away at full use,
# and holding the refill until then each time its count ran low wasted the budget
# (bench/budget_use.py). Either way, a partner that says none remain blocks until its reset.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local capacity = tonumber(ARGV[2])
local per_seconds = tonumber(ARGV[3])
local rate = capacity / per_seconds
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'blocked', 'held')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
local blocked = tonumber(state[3]) or 0
local held = tonumber(state[4]) or 0
if now > ts then
  if now > held then
    tokens = math.min(capacity, tokens + (now - math.max(ts, held)) * rate)
  end
  ts = now
end
local wait = 0
if ARGV[1] == 'take' then
  local wanted = tonumber(ARGV[4])
  if blocked > now then
    wait = blocked - now
  elseif tokens >= wanted then
    tokens = tokens - wanted
  elseif held > now then
    wait = held - now + (wanted - tokens) / rate
  else
    wait = (wanted - tokens) / rate
  end
else
  local remaining = tonumber(ARGV[4])
  local reset_at = tonumber(ARGV[5])
  local in_flight = tonumber(ARGV[6]) or 0
  local limit = tonumber(ARGV[7])
  if remaining and remaining - in_flight < tokens then
    tokens = math.max(remaining - in_flight, 0)
    if (limit == nil or limit < capacity) and reset_at and reset_at > now then
      held = math.max(held, reset_at)
    end
  end
  if remaining == 0 and reset_at and reset_at > now then
    -- Refill starts at the partner's reset, not before: ts in the future means no tokens yet.
    tokens = 0
    ts = math.max(ts, reset_at)
    blocked = math.max(blocked, reset_at)
  end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts),
  'blocked', tostring(blocked), 'held', tostring(held))
-- Idle for a full window the bucket is full again, so forgetting it then loses nothing.
local ttl = math.max(per_seconds, math.max(blocked, held) - now + per_seconds)
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000) + 1000)
return tostring(wait)
"""


class RateLimitTimeout(Exception):
    """No token within `max_wait`; the caller decides whether to retry the batch later."""

    def __init__(self, key: str, waited: float, needed: float) -> None:
        super().__init__(
            f"Rate limit {key}: waited {waited:.3f}s, needed {needed:.3f}s more than allowed"
        )
        self.waited = waited
        self.needed = needed


def connection_bucket_key(connection_id: int) -> str:
    return f"cohortsync:ratelimit:connection:{connection_id}"


class TokenBucket:
    """`capacity` tokens per `per_seconds`, refilled continuously, stored under `key`."""

    def __init__(
        self,
        redis_client: redis.Redis,
        key: str,
        capacity: int,
        per_seconds: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if capacity < 1 or per_seconds <= 0:
            raise ValueError("A token bucket needs capacity >= 1 and per_seconds > 0.")
        self.key = key
        self.capacity = capacity
        self.per_seconds = per_seconds
        self._sleep = sleep
        self._script = redis_client.register_script(_SCRIPT)

    def acquire(self, tokens: int = 1, *, max_wait: float) -> float:
        """Block until `tokens` are taken; the seconds slept. RateLimitTimeout past max_wait."""
        if not 1 <= tokens <= self.capacity:
            raise ValueError(f"Cannot take {tokens} tokens from a bucket of {self.capacity}.")
        waited = 0.0
        while True:
            wait = float(self._run("take", tokens))
            if wait <= 0:
                return waited
            if waited + wait > max_wait:
                raise RateLimitTimeout(self.key, waited, wait)
            # Another worker may take the refill first; the loop simply asks again.
            self._sleep(wait)
            waited += wait

    def observe(self, signal: RateLimitSignal, *, in_flight: int = 0) -> None:
        """Correct the bucket from the partner's headers: never more tokens than the partner
        says remain, less the `in_flight` requests on their way that it had not counted yet
        (or that took a token since); no refill until its reset when its limit is below the
        bucket's capacity, none at all until then once it says none remain."""
        if signal.remaining is None:
            return
        reset_at = "" if signal.reset_at is None else repr(signal.reset_at)
        limit = "" if signal.limit is None else signal.limit
        self._run("observe", signal.remaining, reset_at, in_flight, limit)

    def partner_keeps_pace(self, signal: RateLimitSignal) -> bool:
        """Whether the partner's announced limit is at least the bucket's capacity, so that it
        refills as fast as the bucket: its remaining count then runs low whenever the budget is
        in full use, which says nothing of its limit."""
        return signal.limit is not None and signal.limit >= self.capacity

    def _run(self, mode: str, *args: int | str) -> str:
        result = self._script(
            keys=[self.key], args=[mode, self.capacity, repr(float(self.per_seconds)), *args]
        )
        return result.decode() if isinstance(result, bytes) else str(result)
