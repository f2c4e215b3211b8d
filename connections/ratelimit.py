"""A per-connection token bucket in Redis, shared by every worker and every sync on it.

All state lives in one Redis hash changed only by one Lua script, so refill and take are atomic
across workers, and the script reads Redis `TIME` so the workers' clocks never matter.
"""

import time
from collections.abc import Callable

import redis

from connections.partners.base import RateLimitSignal

# KEYS[1] the bucket hash. ARGV: mode ("take" | "observe"), capacity, per_seconds, then
# for take: tokens wanted; for observe: remaining (or "") and reset_at (or "").
# Fields: tokens, ts (when tokens was computed; may lie in the future while blocked),
# blocked (no tokens before this), held (no refill before this: the partner said fewer
# requests remain than the bucket held, so our rate is above its own, and until its reset
# what it said remains is all there is). Returns the seconds to wait as a string ("0" =
# granted): Redis would truncate a Lua number to an integer.
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
  if remaining and remaining < tokens then
    tokens = math.max(remaining, 0)
    if reset_at and reset_at > now then
      held = math.max(held, reset_at)
    end
  end
  if remaining == 0 and reset_at and reset_at > now then
    -- Refill starts at the partner's reset, not before: ts in the future means no tokens yet.
    tokens = 0
    ts = reset_at
    blocked = reset_at
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

    def observe(self, signal: RateLimitSignal) -> None:
        """Correct the bucket from the partner's headers: the partner's count is the truth."""
        if signal.remaining is None:
            return
        reset_at = "" if signal.reset_at is None else repr(signal.reset_at)
        self._run("observe", signal.remaining, reset_at)

    def _run(self, mode: str, *args: int | str) -> str:
        result = self._script(
            keys=[self.key], args=[mode, self.capacity, repr(float(self.per_seconds)), *args]
        )
        return result.decode() if isinstance(result, bytes) else str(result)
