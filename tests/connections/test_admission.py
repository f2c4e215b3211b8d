"""A request's token and lease, taken together in one Redis round trip and given back with the
partner's headers in one more (connections/admission.py), on a real Redis."""

import os
import threading
import time
from typing import Any

import pytest
import redis

from connections import concurrency
from connections.admission import Admission
from connections.concurrency import FIRST_POLL_SECONDS, ConcurrencyLimit, new_lease_id
from connections.partners.base import RateLimitSignal
from connections.ratelimit import RateLimitTimeout, TokenBucket

BUCKET = "cohortsync:test:admission:bucket"
SLOTS = "cohortsync:test:admission:slots"


class CountingRedis(redis.Redis):
    """A client that notes the name of every command it sends: one per round trip."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


def _admission(
    client: redis.Redis, *, capacity: int, per_seconds: float, in_flight: int, sleep=time.sleep
) -> Admission:
    bucket = TokenBucket(client, BUCKET, capacity=capacity, per_seconds=per_seconds)
    slots = ConcurrencyLimit(client, SLOTS, in_flight)
    return Admission(bucket, slots, sleep=sleep)


def _tokens(client: redis.Redis, key: str = BUCKET) -> float:
    return float(client.hget(key, "tokens"))  # type: ignore[arg-type]


def test_a_token_and_a_lease_are_taken_together(rq_redis: redis.Redis) -> None:
    admission = _admission(rq_redis, capacity=3, per_seconds=3600, in_flight=2)
    lease, waited = admission.acquire(max_wait=0)
    assert waited == 0
    assert _tokens(rq_redis) == pytest.approx(2, abs=0.01)
    assert rq_redis.zrange(SLOTS, 0, -1) == [lease.encode()]


def test_without_a_lease_no_token_is_taken_while_the_request_polls(rq_redis: redis.Redis) -> None:
    polls: list[tuple[float, float]] = []

    def poll(seconds: float) -> None:
        # What the bucket holds while the second request waits; then the first one is answered.
        polls.append((seconds, _tokens(rq_redis)))
        admission.release(first)

    admission = _admission(rq_redis, capacity=3, per_seconds=3600, in_flight=1, sleep=poll)
    first, _ = admission.acquire(max_wait=0)
    second, waited = admission.acquire(max_wait=0)
    assert polls == [(FIRST_POLL_SECONDS, pytest.approx(2, abs=0.01))]
    assert waited == 0  # polls for a lease are not waits for a token
    assert _tokens(rq_redis) == pytest.approx(1, abs=0.01)
    assert rq_redis.zrange(SLOTS, 0, -1) == [second.encode()]


def test_without_a_token_no_lease_is_taken_and_the_bucket_says_how_long(
    rq_redis: redis.Redis,
) -> None:
    admission = _admission(rq_redis, capacity=1, per_seconds=60, in_flight=5)
    admission.acquire(max_wait=0)
    with pytest.raises(RateLimitTimeout) as timeout:
        admission.acquire(max_wait=10)
    assert timeout.value.needed == pytest.approx(60, abs=0.5)
    assert rq_redis.zcard(SLOTS) == 1


def test_a_request_sleeps_what_the_bucket_says_then_gets_its_lease(rq_redis: redis.Redis) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    admission = _admission(rq_redis, capacity=4, per_seconds=1, in_flight=8, sleep=sleep)
    for _ in range(4):
        admission.acquire(max_wait=0)
    _, waited = admission.acquire(max_wait=1)
    assert 0.2 <= waited <= 0.3
    assert sum(slept) == pytest.approx(waited)
    assert rq_redis.zcard(SLOTS) == 5


def test_a_lease_of_a_killed_holder_expires_by_itself(rq_redis: redis.Redis, monkeypatch) -> None:
    monkeypatch.setattr(concurrency, "LEASE_SECONDS", 0.05)
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        time.sleep(seconds)

    admission = _admission(rq_redis, capacity=10, per_seconds=1, in_flight=1, sleep=sleep)
    admission.acquire(max_wait=0)  # never given back: its holder died
    started = time.monotonic()
    lease, waited = admission.acquire(max_wait=0)
    assert polls and waited == 0
    assert time.monotonic() - started < 5
    assert rq_redis.zrange(SLOTS, 0, -1) == [lease.encode()]


@pytest.mark.parametrize(
    "signal",
    [
        RateLimitSignal(limit=50, remaining=10, reset_at=time.time() + 30),
        RateLimitSignal(limit=100, remaining=7, reset_at=time.time() + 1),
        RateLimitSignal(limit=None, remaining=0, reset_at=time.time() + 5),
        RateLimitSignal(limit=100, remaining=99, reset_at=None),
    ],
    ids=["below-capacity", "at-capacity", "none-remain", "more-than-held"],
)
def test_giving_the_lease_back_observes_the_headers_as_the_bucket_does(
    rq_redis: redis.Redis, signal: RateLimitSignal
) -> None:
    admission = _admission(rq_redis, capacity=100, per_seconds=3600, in_flight=4)
    lease, _ = admission.acquire(max_wait=0)
    alone = TokenBucket(rq_redis, "cohortsync:test:admission:alone", capacity=100, per_seconds=3600)
    alone.acquire(max_wait=0)

    admission.release(lease, signal, in_flight=2)
    alone.observe(signal, in_flight=2)

    assert rq_redis.zcard(SLOTS) == 0
    together, apart = rq_redis.hgetall(BUCKET), rq_redis.hgetall(alone.key)
    for field in (b"tokens", b"blocked", b"held"):
        assert float(together[field]) == pytest.approx(float(apart[field]), abs=0.01)
    if signal.remaining is not None and signal.remaining < 99:
        assert _tokens(rq_redis) == max(signal.remaining - 2, 0)


def test_without_headers_the_lease_alone_is_given_back(rq_redis: redis.Redis) -> None:
    admission = _admission(rq_redis, capacity=10, per_seconds=3600, in_flight=4)
    lease, _ = admission.acquire(max_wait=0)
    admission.release(lease, RateLimitSignal(limit=None, remaining=None, reset_at=None))
    assert rq_redis.zcard(SLOTS) == 0
    assert _tokens(rq_redis) == pytest.approx(9, abs=0.01)


def test_a_request_costs_two_round_trips(rq_redis: redis.Redis) -> None:
    client = CountingRedis(connection_pool=rq_redis.connection_pool)
    admission = _admission(client, capacity=100, per_seconds=1, in_flight=4)
    signal = RateLimitSignal(limit=100, remaining=90, reset_at=time.time() + 1)
    admission.release(admission.acquire(max_wait=0)[0], signal)  # loads the scripts
    client.sent.clear()

    lease, _ = admission.acquire(max_wait=0)
    admission.release(lease, signal, in_flight=1)
    assert client.sent == ["EVALSHA", "EVALSHA"]


def test_lease_ids_are_unique_across_clients_threads_and_forked_processes(
    rq_redis: redis.Redis,
) -> None:
    clients = [redis.Redis(connection_pool=rq_redis.connection_pool) for _ in range(2)]
    admissions = [_admission(c, capacity=1000, per_seconds=1, in_flight=1000) for c in clients]
    leases: list[str] = []

    def take(admission: Admission) -> None:
        for _ in range(50):
            leases.append(admission.acquire(max_wait=0)[0])

    threads = [threading.Thread(target=take, args=(a,)) for a in admissions for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(leases)) == len(leases) == 200 == rq_redis.zcard(SLOTS)

    # An RQ work-horse is a fork of its worker: it must not count on from the parent's ids.
    reading, writing = os.pipe()
    parents = new_lease_id()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(writing, new_lease_id().encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    childs = os.read(reading, 200).decode()
    os.close(reading)
    assert childs.rsplit(":", 1)[0] != parents.rsplit(":", 1)[0]
    assert f":{child}:" in childs
