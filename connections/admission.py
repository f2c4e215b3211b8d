"""A run's admissions to a partner, taken from Redis in one round trip for all the requests
waiting at once: a token of the connection's bucket (connections/ratelimit.py) and a lease among
its requests in flight (connections/concurrency.py) for each, while the same trip gives back the
leases of the requests answered since the last one, with what their answers' headers said of the
partner's limit.

Taken apart, they cost four round trips a request (take a token, take a lease, give the lease
back, observe the headers), and two taken together per request (the design until 2026-12),
each a few hundred microseconds of a sending thread's CPU under the interpreter lock once dozens
of threads share it. The script here is built from the same Lua functions as the bucket's and
the lease's own, so each rule is written once; connections/admission_desk.py is the one thread
that makes the trips for a run's sending threads.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from connections import concurrency
from connections.concurrency import LEASE_LUA, ConcurrencyLimit, new_lease_id
from connections.ratelimit import BUCKET_LUA, CLOCK_LUA, TokenBucket, as_text

# What _EXCHANGE answers when the bucket has a token but every lease is out.
_ALL_LEASES_OUT = "busy"

# KEYS[1] the bucket hash, KEYS[2] the lease set. ARGV: capacity, per_seconds, in-flight limit,
# lease seconds, tokens wanted, the new leases' id prefix; how many answers' words follow, then
# each as TokenBucket.observe_args gives it (remaining, reset_at, the requests in flight it had
# not counted, limit; "" where not said); then the leases to give back. Gives the leases back,
# observes each answer in turn, then takes as many tokens and leases as are there, up to those
# wanted, one lease per token: a token is never taken without its lease. Answers {taken, then
# "0" (all taken), the seconds until the next token, or "busy" (a token is there, no lease)}.
_EXCHANGE = (
    CLOCK_LUA
    + BUCKET_LUA
    + LEASE_LUA
    + """
local said = tonumber(ARGV[7])
local give_back_at = 8 + 4 * said
if #ARGV >= give_back_at then
  redis.call('ZREM', KEYS[2], unpack(ARGV, give_back_at))
end
local b = bucket_load(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)
for at = 8, give_back_at - 1, 4 do
  bucket_observe(b, tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]) or 0,
    tonumber(ARGV[at + 3]), now)
end
local wanted = tonumber(ARGV[5])
local taken = 0
local answer = 0
if wanted > 0 then
  answer = bucket_wait(b, 1, now)
  if answer == 0 then
    local room = lease_room(KEYS[2], tonumber(ARGV[3]), now)
    local tokens = math.floor(b.tokens)
    taken = math.max(0, math.min(wanted, tokens, room))
    b.tokens = b.tokens - taken
    for i = 1, taken do
      lease_take(KEYS[2], tonumber(ARGV[4]), ARGV[6] .. i, now)
    end
    if taken < wanted then
      if taken == tokens then
        answer = bucket_wait(b, 1, now)
      else
        answer = 'busy'
      end
    end
  end
end
bucket_save(b, now)
return {tostring(taken), tostring(answer)}
"""
)


@dataclass(frozen=True, slots=True)
class Exchanged:
    """What one trip took: a lease per token, and why it took no more of those wanted (`wait`
    seconds until the next token, or `busy`: a token is there but every lease is out)."""

    leases: list[str]
    wait: float = 0.0
    busy: bool = False


class Admission:
    """The connection's bucket and in-flight limit, exchanged with in one script. Both must be
    on the same Redis client (and, under Redis Cluster, slot)."""

    def __init__(self, bucket: TokenBucket, slots: ConcurrencyLimit) -> None:
        self.bucket = bucket
        self.slots = slots
        self._exchange = slots.redis.register_script(_EXCHANGE)

    def exchange(
        self,
        wanted: int,
        give_back: Sequence[str] = (),
        observed: Sequence[Sequence[int | str]] = (),
    ) -> Exchanged:
        """Give `give_back`'s leases back, correct the bucket from each of `observed` (what
        TokenBucket.observe_args made of the partner's answers), then take up to `wanted`
        tokens, each with its lease; all in one round trip."""
        prefix = f"{new_lease_id()}:"
        args = [
            *self.bucket.shape_args(),
            self.slots.limit,
            concurrency.LEASE_SECONDS,
            wanted,
            prefix,
            len(observed),
            *(value for said in observed for value in said),
            *give_back,
        ]
        taken, answer = (
            as_text(part)
            for part in self._exchange(keys=[self.bucket.key, self.slots.key], args=args)
        )
        leases = [f"{prefix}{i}" for i in range(1, int(taken) + 1)]
        if answer == _ALL_LEASES_OUT:
            return Exchanged(leases, busy=True)
        return Exchanged(leases, wait=float(answer))
