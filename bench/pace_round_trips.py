"""What the shared pace costs per request, in CPU and Redis round trips, with as many sending
threads as a run has (64 by default), each holding its lease a moment as a request in flight
would: the run's admission desk (connections/admission_desk.py: one thread makes the trips for
every waiting request and gives leases back on the next), against each thread making its own two
trips (token and lease together, then the lease back with the partner's headers: the design
until 2026-12) and its own four (the bucket's and the in-flight limit's own methods), measured
in the same run.

    REDIS_URL=redis://127.0.0.1:6379/15 DEBUG=true .venv/bin/python bench/pace_round_trips.py \\
        [--requests 20000] [--threads 64] [--hold-ms 20]

Redis only (its two keys under cohortsync:bench:pace are deleted before and after); no partner
and no database. CPU is the whole process's (time.process_time), every thread's: under the
interpreter lock, what one thread spends the others wait for.
"""

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

BUCKET = "cohortsync:bench:pace:bucket"
SLOTS = "cohortsync:bench:pace:slots"


class CountingRedis:
    """Counts the commands a client sends: one per round trip."""

    def __init__(self, client: Any) -> None:
        self.sent = 0
        execute = client.execute_command

        def counted(*args: Any, **options: Any) -> Any:
            self.sent += 1
            return execute(*args, **options)

        client.execute_command = counted


def measure(request: Callable[[], None], requests: int, threads: int) -> tuple[float, float]:
    """CPU µs per request of the whole process, and wall seconds, `threads` at once."""
    each = requests // threads

    def work() -> None:
        for _ in range(each):
            request()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    cpu, wall = time.process_time(), time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / (each * threads) * 1e6, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--hold-ms", type=float, default=20.0, help="a request's time in flight")
    args = parser.parse_args()
    _common.setup_django(need_postgres=False)
    import redis

    from connections.admission import Admission
    from connections.admission_desk import AdmissionDesk
    from connections.concurrency import ConcurrencyLimit
    from connections.partners.base import RateLimitSignal
    from connections.ratelimit import TokenBucket

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    counter = CountingRedis(client)
    client.delete(BUCKET, SLOTS)
    hold = args.hold_ms / 1000
    # A bucket that never runs dry and a lease for every thread, so the figures are the round
    # trips and nothing else.
    bucket = TokenBucket(client, BUCKET, capacity=10_000_000, per_seconds=1)
    slots = ConcurrencyLimit(client, SLOTS, args.threads)
    admission = Admission(bucket, slots)
    signal = RateLimitSignal(limit=10_000_000, remaining=9_000_000, reset_at=time.time() + 600)
    observed = bucket.observe_args(signal, 0)
    assert observed is not None

    def apart() -> None:
        bucket.acquire(1, max_wait=60)
        lease, _ = slots.acquire()
        time.sleep(hold)
        slots.release(lease)
        bucket.observe(signal, in_flight=0)

    def two_trips() -> None:
        [lease] = admission.exchange(1).leases
        time.sleep(hold)
        admission.exchange(0, [lease], [observed])

    desk = AdmissionDesk(admission, max_wait=60, outage_seconds=60)

    def at_the_desk() -> None:
        lease, _ = desk.acquire()
        time.sleep(hold)
        desk.release(lease, signal)

    rows = []
    for name, request in [("apart", apart), ("two trips each", two_trips), ("desk", at_the_desk)]:
        measure(request, args.threads * 10, args.threads)  # warm-up: scripts loaded, threads
        counter.sent = 0
        cpu, wall = measure(request, args.requests, args.threads)
        if request is at_the_desk:
            desk.close()
        done = args.requests // args.threads * args.threads
        rows.append([name, f"{counter.sent / done:.2f}", f"{cpu:.0f}", f"{done / wall:,.0f}"])
    client.delete(BUCKET, SLOTS)
    print(
        f"{args.requests:,} requests a way, {args.threads} threads, each request holding its "
        f"lease {args.hold_ms:g} ms; {_common.machine()}"
    )
    _common.table(rows, ["token and lease", "round trips/request", "CPU µs/request", "requests/s"])


if __name__ == "__main__":
    main()
