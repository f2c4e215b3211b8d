"""The shared per-connection token bucket, on a real Redis, with a recorded sleep."""

import time
from collections.abc import Callable

import pytest
import redis

from connections.partners.base import RateLimitSignal
from connections.ratelimit import RateLimitTimeout, TokenBucket, connection_bucket_key

KEY = connection_bucket_key(1)


def _really_sleeping(slept: list[float]) -> Callable[[float], None]:
    """Records each wait and sleeps it, since the bucket refills on Redis's clock."""

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    return sleep


def _never_sleeping(slept: list[float]) -> Callable[[float], None]:
    return slept.append


def test_a_full_bucket_grants_its_capacity_without_waiting(rq_redis: redis.Redis) -> None:
    slept: list[float] = []
    bucket = TokenBucket(rq_redis, KEY, capacity=5, per_seconds=1, sleep=_never_sleeping(slept))
    assert [bucket.acquire(max_wait=0) for _ in range(5)] == [0.0] * 5
    assert slept == []


def test_the_next_token_waits_one_refill_interval(rq_redis: redis.Redis) -> None:
    slept: list[float] = []
    bucket = TokenBucket(rq_redis, KEY, capacity=10, per_seconds=1, sleep=_really_sleeping(slept))
    bucket.acquire(10, max_wait=0)
    waited = bucket.acquire(max_wait=1)
    # One token refills in per_seconds / capacity = 0.1 s; a little of it passes between calls.
    assert waited == pytest.approx(0.1, abs=0.02)
    assert len(slept) == 1


def test_two_buckets_with_one_key_share_their_tokens(rq_redis: redis.Redis) -> None:
    first_worker = TokenBucket(rq_redis, KEY, capacity=3, per_seconds=60)
    second_worker = TokenBucket(rq_redis, KEY, capacity=3, per_seconds=60)
    first_worker.acquire(2, max_wait=0)
    second_worker.acquire(max_wait=0)
    with pytest.raises(RateLimitTimeout):
        first_worker.acquire(max_wait=0)
    with pytest.raises(RateLimitTimeout):
        second_worker.acquire(max_wait=0)
    other_connection = TokenBucket(rq_redis, connection_bucket_key(2), capacity=3, per_seconds=60)
    assert other_connection.acquire(max_wait=0) == 0.0


def test_it_times_out_once_the_wait_would_pass_max_wait(rq_redis: redis.Redis) -> None:
    slept: list[float] = []
    bucket = TokenBucket(rq_redis, KEY, capacity=2, per_seconds=10, sleep=_never_sleeping(slept))
    bucket.acquire(2, max_wait=0)
    with pytest.raises(RateLimitTimeout) as caught:
        bucket.acquire(max_wait=12)
    # Each (fake) sleep is 5 s; the third would pass 12 s, so it gives up after two.
    assert slept == [pytest.approx(5, abs=0.01)] * 2
    assert caught.value.waited == pytest.approx(10, abs=0.02)


def test_observe_lowers_the_tokens_to_what_the_partner_says_remain(
    rq_redis: redis.Redis,
) -> None:
    bucket = TokenBucket(rq_redis, KEY, capacity=10, per_seconds=60)
    bucket.observe(RateLimitSignal(limit=10, remaining=2, reset_at=None))
    bucket.acquire(2, max_wait=0)
    with pytest.raises(RateLimitTimeout):
        bucket.acquire(max_wait=0)


def test_observe_never_raises_the_tokens(rq_redis: redis.Redis) -> None:
    bucket = TokenBucket(rq_redis, KEY, capacity=10, per_seconds=60)
    bucket.acquire(9, max_wait=0)
    bucket.observe(RateLimitSignal(limit=10, remaining=8, reset_at=None))
    bucket.acquire(max_wait=0)
    with pytest.raises(RateLimitTimeout):
        bucket.acquire(max_wait=0)


def test_no_token_is_granted_before_the_partners_reset(rq_redis: redis.Redis) -> None:
    slept: list[float] = []
    bucket = TokenBucket(rq_redis, KEY, capacity=1000, per_seconds=1, sleep=_really_sleeping(slept))
    reset_at = time.time() + 0.3
    bucket.observe(RateLimitSignal(limit=1000, remaining=0, reset_at=reset_at))
    with pytest.raises(RateLimitTimeout):
        bucket.acquire(max_wait=0.1)
    assert slept == []
    waited = bucket.acquire(max_wait=1)
    # The bucket refills from the reset, at 1 ms per token, so it waits until just past it.
    assert waited == pytest.approx(0.3, abs=0.05)


def test_requests_in_flight_are_taken_off_what_the_partner_says_remain(
    rq_redis: redis.Redis,
) -> None:
    bucket = TokenBucket(rq_redis, KEY, capacity=10, per_seconds=60)
    bucket.observe(RateLimitSignal(limit=10, remaining=5, reset_at=None), in_flight=3)
    bucket.acquire(2, max_wait=0)
    with pytest.raises(RateLimitTimeout):
        bucket.acquire(max_wait=0)


def test_a_low_remaining_does_not_stop_the_refill_until_the_partners_reset(
    rq_redis: redis.Redis,
) -> None:
    # A partner that refills continuously says its reset is when it is full again: a bucket
    # that waited for it whenever the partner's count ran low used half the budget.
    slept: list[float] = []
    bucket = TokenBucket(rq_redis, KEY, capacity=100, per_seconds=1, sleep=_really_sleeping(slept))
    reset_at = time.time() + 30
    bucket.observe(RateLimitSignal(limit=100, remaining=1, reset_at=reset_at))
    bucket.acquire(max_wait=0)
    # The next token comes one refill interval (10 ms) later, not at the reset 30 s away.
    assert bucket.acquire(max_wait=1) <= 0.011


@pytest.mark.parametrize("announced_limit", [10, None])
def test_a_partner_allowing_less_than_the_bucket_holds_its_refill_until_its_reset(
    rq_redis: redis.Redis, announced_limit: int | None
) -> None:
    # The connection believes 100 a second; the partner says its limit is 10 (or says nothing
    # of it): until its reset, what it says remains is all there is.
    slept: list[float] = []
    bucket = TokenBucket(rq_redis, KEY, capacity=100, per_seconds=1, sleep=_never_sleeping(slept))
    bucket.observe(RateLimitSignal(limit=announced_limit, remaining=1, reset_at=time.time() + 30))
    bucket.acquire(max_wait=0)
    with pytest.raises(RateLimitTimeout) as caught:
        bucket.acquire(max_wait=1)
    assert caught.value.needed > 29
    assert slept == []


def test_a_partner_keeps_pace_when_its_limit_is_at_least_the_capacity(
    rq_redis: redis.Redis,
) -> None:
    bucket = TokenBucket(rq_redis, KEY, capacity=300, per_seconds=1)
    assert bucket.partner_keeps_pace(RateLimitSignal(limit=300, remaining=0, reset_at=None))
    assert bucket.partner_keeps_pace(RateLimitSignal(limit=3000, remaining=5, reset_at=None))
    assert not bucket.partner_keeps_pace(RateLimitSignal(limit=299, remaining=5, reset_at=None))
    assert not bucket.partner_keeps_pace(RateLimitSignal(limit=None, remaining=5, reset_at=None))


def test_what_is_in_flight_alone_does_not_block_until_the_reset(rq_redis: redis.Redis) -> None:
    slept: list[float] = []
    bucket = TokenBucket(rq_redis, KEY, capacity=100, per_seconds=1, sleep=_really_sleeping(slept))
    bucket.observe(RateLimitSignal(limit=100, remaining=3, reset_at=time.time() + 30), in_flight=5)
    # No token now (3 remain, 5 are on their way), but one refill interval brings the next.
    with pytest.raises(RateLimitTimeout):
        bucket.acquire(max_wait=0)
    assert bucket.acquire(max_wait=1) <= 0.011


def test_an_idle_bucket_expires_after_about_one_window(rq_redis: redis.Redis) -> None:
    bucket = TokenBucket(rq_redis, KEY, capacity=10, per_seconds=3)
    bucket.acquire(max_wait=0)
    assert 3000 < rq_redis.pttl(KEY) <= 4000
    bucket.observe(RateLimitSignal(limit=10, remaining=0, reset_at=time.time() + 60))
    # A block outlives the idle expiry: forgetting it would let workers hammer the partner.
    assert 60_000 < rq_redis.pttl(KEY) <= 64_000


def test_taking_more_than_the_capacity_is_refused(rq_redis: redis.Redis) -> None:
    bucket = TokenBucket(rq_redis, KEY, capacity=2, per_seconds=1)
    with pytest.raises(ValueError):
        bucket.acquire(3, max_wait=10)
