"""A request's token and lease, taken together at its run's admission desk: one Redis round trip
for every request waiting at once, which also gives back the leases answered since the last,
with the partner's headers (connections/admission.py, connections/admission_desk.py), on a real
Redis."""

import os
import threading
import time
from typing import Any

import pytest
import redis

from connections import admission_desk, concurrency
from connections.admission import Admission
from connections.admission_desk import AdmissionDesk, RedisOutage
from connections.concurrency import FIRST_POLL_SECONDS, ConcurrencyLimit, new_lease_id
from connections.partners.base import RateLimitSignal
from connections.ratelimit import RateLimitTimeout, TokenBucket

BUCKET = "cohortsync:test:admission:bucket"
SLOTS = "cohortsync:test:admission:slots"


class CountingRedis(redis.Redis):
    """A client that notes the name of every command it sends (one per round trip), and holds
    each until `gate` is open."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.gate.wait()
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


def _desk(
    client: redis.Redis,
    *,
    capacity: int,
    per_seconds: float,
    in_flight: int,
    pause=time.sleep,
    max_wait: float = 0.0,
    outage_seconds: float = 120.0,
    bucket: str = BUCKET,
) -> AdmissionDesk:
    admission = Admission(
        TokenBucket(client, bucket, capacity=capacity, per_seconds=per_seconds),
        ConcurrencyLimit(client, SLOTS, in_flight),
    )
    return AdmissionDesk(admission, max_wait=max_wait, outage_seconds=outage_seconds, pause=pause)


class Slept(list[float]):
    """A pause that really sleeps and notes each sleep."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds)


def _tokens(client: redis.Redis, key: str = BUCKET) -> float:
    return float(client.hget(key, "tokens"))  # type: ignore[arg-type]


def _in_threads(targets: list) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_a_token_and_a_lease_are_taken_together(rq_redis: redis.Redis) -> None:
    desk = _desk(rq_redis, capacity=3, per_seconds=3600, in_flight=2)
    lease, waited = desk.acquire()
    assert waited == 0
    assert _tokens(rq_redis) == pytest.approx(2, abs=0.01)
    assert rq_redis.zrange(SLOTS, 0, -1) == [lease.encode()]
    desk.close()


def test_without_a_lease_no_token_is_taken_while_the_request_polls(rq_redis: redis.Redis) -> None:
    polls: list[tuple[float, float]] = []
    # Another worker of the connection holds its only lease.
    other = ConcurrencyLimit(rq_redis, SLOTS, 1)
    held, _ = other.acquire()

    def poll(seconds: float) -> None:
        # What the bucket holds while the request waits; then the other worker's is answered.
        polls.append((seconds, _tokens(rq_redis)))
        other.release(held)

    desk = _desk(rq_redis, capacity=3, per_seconds=3600, in_flight=1, pause=poll)
    lease, waited = desk.acquire()
    assert polls == [(FIRST_POLL_SECONDS, pytest.approx(3, abs=0.01))]
    assert waited == 0  # polls for a lease are not waits for a token
    assert _tokens(rq_redis) == pytest.approx(2, abs=0.01)
    assert rq_redis.zrange(SLOTS, 0, -1) == [lease.encode()]
    desk.close()


def test_a_request_waiting_for_its_own_run_s_lease_gets_it_when_given_back(
    rq_redis: redis.Redis,
) -> None:
    # Four runs sharing 32 leases at 100 ms used 72 % of them while the clerk slept through
    # its own run's leases coming back (bench/budget_use.py --limit 3000 --threads 32).
    polls: list[float] = []
    desk = _desk(rq_redis, capacity=3, per_seconds=3600, in_flight=1, pause=polls.append)
    first, _ = desk.acquire()
    admitted: list[tuple[str, float]] = []
    waiting = threading.Thread(target=lambda: admitted.append(desk.acquire()))
    waiting.start()
    time.sleep(0.3)  # the clerk's polls back off to their longest meanwhile
    assert admitted == []
    assert _tokens(rq_redis) == pytest.approx(2, abs=0.01)  # no token without its lease
    given_back = time.monotonic()
    desk.release(first)
    waiting.join(timeout=5)
    assert time.monotonic() - given_back < 2
    [(second, waited)] = admitted
    assert waited == 0
    assert rq_redis.zrange(SLOTS, 0, -1) == [second.encode()]
    assert polls == []  # it waited for its own lease, not with the pause
    desk.close()


def test_without_a_token_no_lease_is_taken_and_the_bucket_says_how_long(
    rq_redis: redis.Redis,
) -> None:
    desk = _desk(rq_redis, capacity=1, per_seconds=60, in_flight=5, max_wait=10)
    desk.acquire()
    with pytest.raises(RateLimitTimeout) as timeout:
        desk.acquire()
    assert timeout.value.needed == pytest.approx(60, abs=0.5)
    assert rq_redis.zcard(SLOTS) == 1
    desk.close()


def test_a_request_sleeps_what_the_bucket_says_then_gets_its_lease(rq_redis: redis.Redis) -> None:
    slept = Slept()
    desk = _desk(rq_redis, capacity=4, per_seconds=1, in_flight=8, pause=slept, max_wait=1)
    for _ in range(4):
        desk.acquire()
    _, waited = desk.acquire()
    assert 0.2 <= waited <= 0.3
    assert sum(slept) == pytest.approx(waited)
    assert rq_redis.zcard(SLOTS) == 5
    desk.close()


def test_requests_waiting_together_count_the_bucket_s_hold_once(rq_redis: redis.Redis) -> None:
    slept = Slept()
    desk = _desk(rq_redis, capacity=10, per_seconds=1, in_flight=20, pause=slept, max_wait=5)
    for _ in range(10):
        desk.acquire()
    waits: list[float] = []
    started = time.monotonic()
    _in_threads([lambda: waits.append(desk.acquire()[1]) for _ in range(5)])
    # Five requests waited together about 0.5 s for five tokens: the run was held 0.5 s, not
    # 0.5 s for each of them.
    assert sum(waits) == pytest.approx(sum(slept))
    assert 0.4 <= sum(waits) <= time.monotonic() - started
    assert rq_redis.zcard(SLOTS) == 15
    desk.close()


def test_a_lease_of_a_killed_holder_expires_by_itself(rq_redis: redis.Redis, monkeypatch) -> None:
    monkeypatch.setattr(concurrency, "LEASE_SECONDS", 0.05)
    polls = Slept()
    # Another worker took the only lease, and died: it never gives it back.
    dead = _desk(rq_redis, capacity=10, per_seconds=1, in_flight=1)
    dead.acquire()
    desk = _desk(rq_redis, capacity=10, per_seconds=1, in_flight=1, pause=polls)
    started = time.monotonic()
    lease, waited = desk.acquire()
    assert polls and waited == 0
    assert time.monotonic() - started < 5
    assert rq_redis.zrange(SLOTS, 0, -1) == [lease.encode()]
    desk.close()
    dead.close()


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
def test_giving_the_lease_back_observes_the_headers_less_the_requests_still_out(
    rq_redis: redis.Redis, signal: RateLimitSignal
) -> None:
    desk = _desk(rq_redis, capacity=100, per_seconds=3600, in_flight=4)
    lease, _ = desk.acquire()
    desk.acquire()
    desk.acquire()  # two requests still on their way when the answer is observed
    alone = TokenBucket(rq_redis, "cohortsync:test:admission:alone", capacity=100, per_seconds=3600)
    alone.acquire(3, max_wait=0)

    desk.release(lease, signal)
    desk.close()  # gives back what it still holds
    alone.observe(signal, in_flight=2)

    assert rq_redis.zcard(SLOTS) == 2
    together, apart = rq_redis.hgetall(BUCKET), rq_redis.hgetall(alone.key)
    for field in (b"tokens", b"blocked", b"held"):
        assert float(together[field]) == pytest.approx(float(apart[field]), abs=0.01)
    if signal.remaining is not None and signal.remaining < 99:
        assert _tokens(rq_redis) == max(signal.remaining - 2, 0)


def test_a_request_admitted_after_the_answer_is_taken_off_what_the_partner_said_remains(
    rq_redis: redis.Redis,
) -> None:
    client = CountingRedis(connection_pool=rq_redis.connection_pool)
    desk = _desk(client, capacity=100, per_seconds=3600, in_flight=4)
    first, _ = desk.acquire()
    client.gate.clear()  # the next trip waits here, its request admitted after the answer
    second = threading.Thread(target=desk.acquire)
    second.start()
    deadline = time.monotonic() + 10
    while desk.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    desk.release(first, RateLimitSignal(limit=50, remaining=5, reset_at=time.time() + 30))
    client.gate.set()
    second.join()
    desk.close()
    # The partner said 5 remain; the second request had not reached it then.
    assert _tokens(rq_redis) == pytest.approx(4, abs=0.01)
    assert rq_redis.zcard(SLOTS) == 1


def test_an_older_answer_given_back_last_does_not_raise_what_a_newer_one_said_remains(
    rq_redis: redis.Redis, monkeypatch
) -> None:
    monkeypatch.setattr(admission_desk, "RELEASE_LINGER_SECONDS", 30.0)
    desk = _desk(rq_redis, capacity=100, per_seconds=3600, in_flight=4)
    first, second = desk.acquire()[0], desk.acquire()[0]
    desk.acquire()  # still on its way when both answers are observed
    reset_at = time.time() + 30
    # The newer answer (5 remain) is given back first, the older one (8 remain) after it.
    desk.release(first, RateLimitSignal(limit=50, remaining=5, reset_at=reset_at))
    desk.release(second, RateLimitSignal(limit=50, remaining=8, reset_at=reset_at))
    desk.close()
    assert _tokens(rq_redis) == pytest.approx(4, abs=0.01)
    assert rq_redis.zcard(SLOTS) == 1


def test_without_headers_the_lease_alone_is_given_back(rq_redis: redis.Redis) -> None:
    desk = _desk(rq_redis, capacity=10, per_seconds=3600, in_flight=4)
    lease, _ = desk.acquire()
    desk.release(lease)
    desk.close()
    assert rq_redis.zcard(SLOTS) == 0
    assert _tokens(rq_redis) == pytest.approx(9, abs=0.01)


def test_a_lease_given_back_goes_with_the_next_request_in_one_round_trip(
    rq_redis: redis.Redis, monkeypatch
) -> None:
    monkeypatch.setattr(admission_desk, "RELEASE_LINGER_SECONDS", 30.0)
    client = CountingRedis(connection_pool=rq_redis.connection_pool)
    desk = _desk(client, capacity=100, per_seconds=1, in_flight=4)
    signal = RateLimitSignal(limit=100, remaining=90, reset_at=time.time() + 1)
    first, _ = desk.acquire()
    client.sent.clear()

    desk.release(first, signal)
    second, _ = desk.acquire()
    assert client.sent == ["EVALSHA"]
    assert rq_redis.zrange(SLOTS, 0, -1) == [second.encode()]
    # The partner said 90 remain; the second request took one of them.
    assert _tokens(rq_redis) == pytest.approx(89, abs=0.1)
    desk.close()


def test_requests_waiting_together_are_admitted_in_one_round_trip(rq_redis: redis.Redis) -> None:
    client = CountingRedis(connection_pool=rq_redis.connection_pool)
    desk = _desk(client, capacity=100, per_seconds=1, in_flight=10)
    client.gate.clear()  # the first request's trip waits here while seven more arrive
    leases: list[str] = []
    threads = [threading.Thread(target=lambda: leases.append(desk.acquire()[0])) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while desk.waiting < 8 and time.monotonic() < deadline:
        time.sleep(0.001)
    client.gate.set()
    for thread in threads:
        thread.join()

    assert desk.admitted == 8
    assert client.sent.count("EVALSHA") <= 2 < 8
    assert sorted(rq_redis.zrange(SLOTS, 0, -1)) == sorted(lease.encode() for lease in leases)
    assert _tokens(rq_redis) == pytest.approx(92, abs=0.5)
    desk.close()


def test_runs_on_one_connection_never_hold_more_leases_than_its_limit(
    rq_redis: redis.Redis,
) -> None:
    desks = [_desk(rq_redis, capacity=1000, per_seconds=1, in_flight=3) for _ in range(2)]
    now = peak = 0
    lock = threading.Lock()

    def request(desk: AdmissionDesk) -> None:
        nonlocal now, peak
        for _ in range(5):
            lease, _ = desk.acquire()
            with lock:
                now += 1
                peak = max(peak, now)
            time.sleep(0.01)
            with lock:
                now -= 1
            desk.release(lease)

    # Eight sending threads of two runs.
    _in_threads([lambda desk=desk: request(desk) for desk in desks for _ in range(4)])
    for desk in desks:
        desk.close()
    assert peak == 3
    assert rq_redis.zcard(SLOTS) == 0


def test_redis_out_of_reach_is_waited_out_then_refused_and_what_was_held_goes_back_after(
    rq_redis: redis.Redis, monkeypatch
) -> None:
    desk = _desk(rq_redis, capacity=100, per_seconds=1, in_flight=4, outage_seconds=0.2)
    lease, _ = desk.acquire()
    exchange = desk.admission.exchange
    attempts = 0

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        nonlocal attempts
        attempts += 1
        raise redis.ConnectionError("Redis is away")

    monkeypatch.setattr(desk.admission, "exchange", unreachable)
    desk.release(lease)
    with pytest.raises(RedisOutage) as outage:
        desk.acquire()
    assert outage.value.seconds >= 0.2
    assert attempts >= 2
    assert rq_redis.zcard(SLOTS) == 1  # the lease waits for Redis to come back

    monkeypatch.setattr(desk.admission, "exchange", exchange)
    again, _ = desk.acquire()
    assert rq_redis.zrange(SLOTS, 0, -1) == [again.encode()]
    desk.close()


def test_lease_ids_are_unique_across_desks_threads_and_forked_processes(
    rq_redis: redis.Redis,
) -> None:
    clients = [redis.Redis(connection_pool=rq_redis.connection_pool) for _ in range(2)]
    desks = [_desk(c, capacity=1000, per_seconds=1, in_flight=1000) for c in clients]
    leases: list[str] = []

    def take(desk: AdmissionDesk) -> None:
        for _ in range(50):
            leases.append(desk.acquire()[0])

    _in_threads([lambda desk=desk: take(desk) for desk in desks for _ in range(2)])
    assert len(set(leases)) == len(leases) == 200 == rq_redis.zcard(SLOTS)
    for desk in desks:
        desk.close()

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
