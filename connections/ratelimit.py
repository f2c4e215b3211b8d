"""A per-connection token bucket in Redis, shared by every worker and every sync on it.

All state lives in one Redis hash changed only by Lua scripts, so refill and take are atomic
across workers, and the scripts read Redis `TIME` so the workers' clocks never matter. The
bucket's rules are Lua functions (BUCKET_LUA) that this module's script and the one that takes
a token and a lease together (connections/admission.py) are both built from.
"""

import time
from collections.abc import Callable

import redis

from connections.partners.base import RateLimitSignal

# Every script starts here: `now` in seconds by Redis's clock, shared by all the workers.
CLOCK_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# The bucket is a hash of: tokens, ts (when tokens was computed; may lie in the future while
# blocked), blocked (no tokens before this), held (no refill before this). `bucket_load` reads it
# refilled up to now, `bucket_wait` says how long until tokens are there, `bucket_observe`
# corrects it from the partner's headers, `bucket_save` writes it back.
#
# What the partner says remains only ever lowers the tokens. Whether the refill goes on
# depends on its limit: one below the capacity (or unknown) means the connection's setting is
# above the partner's, so until its reset what it says remains is all there is (held). One at
# the capacity refills as fast as the bucket does: a partner that refills continuously (the
# simulator) announces as its reset the moment it is full again, a second away at full use,
# and holding the refill until then each time its count ran low wasted the budget
# (bench/budget_use.py). Either way, a partner that says none remain blocks until its reset.
BUCKET_LUA = """
local function bucket_load(key, capacity, per_seconds, now)
  local state = redis.call('HMGET', key, 'tokens', 'ts', 'blocked', 'held')
  local b = {key = key, capacity = capacity, per_seconds = per_seconds,
    rate = capacity / per_seconds, tokens = tonumber(state[1]) or capacity,
    ts = tonumber(state[2]) or now, blocked = tonumber(state[3]) or 0,
    held = tonumber(state[4]) or 0}
  if now > b.ts then
    if now > b.held then
      b.tokens = math.min(capacity, b.tokens + (now - math.max(b.ts, b.held)) * b.rate)
    end
    b.ts = now
  end
  return b
end

-- Seconds until `wanted` tokens are there; exactly 0 when they are (the caller takes them).
local function bucket_wait(b, wanted, now)
  if b.blocked > now then
    return b.blocked - now
  elseif b.tokens >= wanted then
    return 0
  elseif b.held > now then
    return b.held - now + (wanted - b.tokens) / b.rate
  end
  return (wanted - b.tokens) / b.rate
end

-- remaining and reset_at may be nil (not said), limit too; in_flight is a number.
local function bucket_observe(b, remaining, reset_at, in_flight, limit, now)
  if remaining and remaining - in_flight < b.tokens then
    b.tokens = math.max(remaining - in_flight, 0)
    if (limit == nil or limit < b.capacity) and reset_at and reset_at > now then
      b.held = math.max(b.held, reset_at)
    end
  end
  if remaining == 0 and reset_at and reset_at > now then
    -- Refill starts at the partner's reset, not before: ts in the future means no tokens yet.
    b.tokens = 0
    b.ts = math.max(b.ts, reset_at)
    b.blocked = math.max(b.blocked, reset_at)
  end
end

local function bucket_save(b, now)
  redis.call('HSET', b.key, 'tokens', tostring(b.tokens), 'ts', tostring(b.ts),
    'blocked', tostring(b.blocked), 'held', tostring(b.held))
  -- Idle for a full window the bucket is full again, so forgetting it then loses nothing.
  local ttl = math.max(b.per_seconds, math.max(b.blocked, b.held) - now + b.per_seconds)
  redis.call('PEXPIRE', b.key, math.ceil(ttl * 1000) + 1000)
end
"""

# KEYS[1] the bucket hash. ARGV: mode ("take" | "observe"), capacity, per_seconds, then
# for take: tokens wanted; for observe: remaining (or ""), reset_at (or ""), the requests on
# their way that the partner had not counted yet, and the partner's announced limit (or "")
# (TokenBucket.observe_args). Returns the seconds to wait as a string ("0" = granted): Redis
# would truncate a Lua number to an integer.
_SCRIPT = (
    CLOCK_LUA
    + BUCKET_LUA
    + """
local b = bucket_load(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), now)
local wait = 0
if ARGV[1] == 'take' then
  local wanted = tonumber(ARGV[4])
  wait = bucket_wait(b, wanted, now)
  if wait == 0 then
    b.tokens = b.tokens - wanted
  end
else
  bucket_observe(b, tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]) or 0,
    tonumber(ARGV[7]), now)
end
bucket_save(b, now)
return tostring(wait)
"""
)


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
        args = self.observe_args(signal, in_flight)
        if args is not None:
            self._run("observe", *args)

    @staticmethod
    def observe_args(signal: RateLimitSignal, in_flight: int) -> list[int | str] | None:
        """`bucket_observe`'s arguments as the scripts read them: remaining, reset_at (or ""),
        in_flight, limit (or ""); None when the partner did not say what remains, which leaves
        nothing to observe."""
        if signal.remaining is None:
            return None
        reset_at = "" if signal.reset_at is None else repr(signal.reset_at)
        limit = "" if signal.limit is None else signal.limit
        return [signal.remaining, reset_at, in_flight, limit]

    def shape_args(self) -> list[int | str]:
        """`bucket_load`'s arguments after the key: capacity and per_seconds (a float string:
        Redis would truncate a number to an integer)."""
        return [self.capacity, repr(float(self.per_seconds))]

    def partner_keeps_pace(self, signal: RateLimitSignal) -> bool:
        """Whether the partner's announced limit is at least the bucket's capacity, so that it
        refills as fast as the bucket: its remaining count then runs low whenever the budget is
        in full use, which says nothing of its limit."""
        return signal.limit is not None and signal.limit >= self.capacity

    def _run(self, mode: str, *args: int | str) -> str:
        return as_text(self._script(keys=[self.key], args=[mode, *self.shape_args(), *args]))


def as_text(answer: object) -> str:
    """A script's string answer, whether the client decodes responses or not."""
    return answer.decode() if isinstance(answer, bytes) else str(answer)
