"""What the shared pace costs a sending thread per request, in CPU and wall time, on one thread:
its token and lease taken in one round trip and given back with the partner's headers in one
more (connections/admission.py), against the four round trips of taking and giving them apart
(the bucket's and the in-flight limit's own methods), measured in the same run.

    REDIS_URL=redis://127.0.0.1:6379/15 DEBUG=true .venv/bin/python bench/pace_round_trips.py \\
        [--requests 20000]

Redis only (its two keys under cohortsync:bench:pace are deleted before and after); no partner
and no database. CPU is the thread's own (time.thread_time): what the other threads of the
engine wait for under the interpreter lock.
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

BUCKET = "cohortsync:bench:pace:bucket"
SLOTS = "cohortsync:bench:pace:slots"


def per_request(request: Callable[[], None], requests: int) -> tuple[float, float]:
    """Microseconds of CPU and of wall time per request, after a warm-up."""
    for _ in range(500):
        request()
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(requests):
        request()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    return cpu / requests * 1e6, wall / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    _common.setup_django(need_postgres=False)
    import redis

    from connections.admission import Admission
    from connections.concurrency import ConcurrencyLimit
    from connections.partners.base import RateLimitSignal
    from connections.ratelimit import TokenBucket

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.delete(BUCKET, SLOTS)
    # A bucket that never runs dry, so the figures are the round trips and nothing else.
    bucket = TokenBucket(client, BUCKET, capacity=10_000_000, per_seconds=1)
    slots = ConcurrencyLimit(client, SLOTS, 8)
    admission = Admission(bucket, slots)
    signal = RateLimitSignal(limit=10_000_000, remaining=9_000_000, reset_at=time.time() + 600)

    def apart() -> None:
        bucket.acquire(1, max_wait=60)
        lease, _ = slots.acquire()
        slots.release(lease)
        bucket.observe(signal, in_flight=0)

    def together() -> None:
        lease, _ = admission.acquire(max_wait=60)
        admission.release(lease, signal, in_flight=0)

    rows = []
    for name, trips, request in [("apart", 4, apart), ("together", 2, together)]:
        cpu, wall = per_request(request, args.requests)
        rows.append([name, trips, f"{cpu:.1f}", f"{wall:.1f}"])
    client.delete(BUCKET, SLOTS)
    print(f"{args.requests:,} requests a way, one thread; {_common.machine()}")
    _common.table(rows, ["token and lease", "round trips", "CPU µs/request", "wall µs/request"])


if __name__ == "__main__":
    main()
