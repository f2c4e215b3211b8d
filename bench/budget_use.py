"""Budget use: four workers, each running a sync on the same Braze connection, against a
simulator limited to 300 requests/s at 100 ms: how much of the 300 they use together, and how
many 429s they meet.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cohortsync_bench \\
    REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/budget_use.py [--workers 4] [--members 170000] \\
        [--limit 300] [--latency-ms 100]

The simulator (`partner_sandbox --processes 2`, its limit shared by both) answers past its
limit with 429; the connection is told the same limit (300 requests per 1 s), as an admin would
set it, so the connection's shared token bucket (connections/ratelimit.py) and its in-flight
leases (connections/concurrency.py) are what pace the four runs. Each run is a worker process
of its own (bench/_worker.py). The simulator's request counts are read every half second: the
figure is the requests/s answered while all four runs were sending (from the last start to the
first end), against the limit. Targets: >= 95 % of it, zero 429s. The simulator's own ceiling
at this latency and in-flight count is measured in the same run, limit lifted, and printed
beside it.
"""

import argparse
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from full_sync import with_latency
from simulator_ceiling import CEILING_CLIENTS, measure

TARGET_SHARE = 0.95
SAMPLE_SECONDS = 0.5


class RequestSampler:
    """The simulator's answered requests (201 and 429) over time, read from its /stats."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int, int]] = []  # (time, answered, 429s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "RequestSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._read()

    def _read(self) -> None:
        counts = _common.control(self.url, "/stats")["requests"].get("POST /users/track", {})
        self.samples.append((time.time(), sum(counts.values()), counts.get("429", 0)))

    def between(self, start: float, end: float) -> float:
        """Requests answered between two wall-clock times, from the samples around them."""
        return self._at(end) - self._at(start)

    def _at(self, moment: float) -> float:
        before = [s for s in self.samples if s[0] <= moment] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= moment] or self.samples[-1:]
        (t0, n0, _), (t1, n1, _) = before[-1], after[0]
        return n0 if t1 == t0 else n0 + (n1 - n0) * (moment - t0) / (t1 - t0)


def run_together(run_ids: list[int]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [{} for _ in run_ids]

    def one(index: int, run_id: int) -> None:
        results[index] = _common.run_in_worker(run_id)

    threads = [threading.Thread(target=one, args=pair) for pair in enumerate(run_ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--members", type=int, default=170_000, help="per sync")
    parser.add_argument("--limit", type=int, default=300, help="requests/s")
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--threads", type=int, help="the connection's maximum concurrent requests")
    args = parser.parse_args()
    _common.setup_django()
    from full_sync import in_flight_default

    in_flight = args.threads or in_flight_default("braze")
    print(
        f"{args.workers} workers x {args.members:,} members; limit {args.limit} requests/s; "
        f"latency {args.latency_ms} ms; {in_flight} in flight at most; {_common.machine()}",
        flush=True,
    )
    tag = uuid.uuid4().hex[:6]
    cohorts = [
        _common.make_cohort(f"bench budget {tag} {n}", args.members, first=n * args.members)
        for n in range(args.workers)
    ]
    with _common.simulator() as url:
        ceiling, _ = measure(url, in_flight * 2, 5.0, args.latency_ms, clients=CEILING_CLIENTS)
        _common.control(url, "/reset", {})
        _common.control(url, "/config", {"braze_rate_limit": args.limit, "braze_rate_window": 1})
        with_latency(url, "braze", args.latency_ms)
        connection = _common.make_connection(
            "braze",
            url,
            f"bench budget {tag}",
            rate_limit_requests=args.limit,
            rate_limit_seconds=1,
            max_concurrent_requests=in_flight,
        )
        runs = [_common.queue_run(_common.make_sync(cohort, connection)) for cohort in cohorts]
        try:
            with RequestSampler(url) as sampler:
                results = run_together(runs)
            final = _common.control(url, "/stats")["requests"].get("POST /users/track", {})
        finally:
            for cohort in cohorts:
                _common.drop_cohort(cohort)
            connection.delete()
    for result in results:
        if result["status"] != "succeeded" or result["added"] != args.members:
            raise SystemExit(f"A run did not send everyone: {result}")

    together_from = max(r["started_at"] for r in results)
    together_to = min(r["finished_at"] for r in results)
    overall_from = min(r["started_at"] for r in results)
    overall_to = max(r["finished_at"] for r in results)
    together = sampler.between(together_from, together_to) / (together_to - together_from)
    overall = sum(final.values()) / (overall_to - overall_from)
    refused = final.get("429", 0)
    share = together / args.limit
    rows = [
        ["requests/s, all four sending", f"{together:,.1f}", f"{args.limit}", f"{share:.1%}"],
        [
            "requests/s, first start to last end",
            f"{overall:,.1f}",
            f"{args.limit}",
            f"{overall / args.limit:.1%}",
        ],
        ["seconds all four sending", f"{together_to - together_from:.1f}", "", ""],
        ["429s answered by the simulator", f"{refused}", "0", ""],
        ["requests (201 + 429)", f"{sum(final.values()):,}", "", ""],
        ["runs' retries / seconds throttled", _per_run(results), "", ""],
        ["runs' start-end, s from the first start", _windows(results, overall_from), "", ""],
        ["runs' CPU, s", ", ".join(f"{r['cpu_seconds']:.1f}" for r in results), "", ""],
        ["simulator ceiling, limit lifted, same run", f"{ceiling:,.0f}", "", ""],
    ]
    print()
    _common.table(rows, ["figure", "measured", "limit", "share"])
    verdict = "PASS" if share >= TARGET_SHARE and refused == 0 else "FAIL"
    print(
        f"{verdict}: {share:.1%} of {args.limit} requests/s used together (target "
        f"{TARGET_SHARE:.0%}), {refused} 429s (target 0); simulator ceiling "
        f"{ceiling:,.0f} requests/s at {args.latency_ms} ms with {in_flight * 2} in flight"
    )
    print(f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


def _windows(results: list[dict[str, Any]], first: float) -> str:
    return ", ".join(
        f"{r['started_at'] - first:.1f}-{r['finished_at'] - first:.1f}" for r in results
    )


def _per_run(results: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['retries']}/{r['throttled_seconds']:.1f}" for r in results)


if __name__ == "__main__":
    main()
