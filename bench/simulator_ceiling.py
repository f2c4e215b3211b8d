"""The partner simulator's own ceiling: how many Braze requests/s it answers on this machine.

    DEBUG=true .venv/bin/python bench/simulator_ceiling.py [--processes 1 2 3] \\
        [--latency-ms 0 50 100 200] [--threads 64] [--seconds 5]

The bare reference client of bench/full_sync.py (`requests`, keep-alive, pre-built 75-object
`/users/track` bodies, one thread per request in flight) against `manage.py partner_sandbox
--processes N` in processes of their own, its Braze rate limit lifted so that only the machine
limits it. One process is a ThreadingHTTPServer whose threads the GIL holds to about one core;
several processes serve the same port (SO_REUSEPORT). At a latency the ceiling is also bounded
by the requests in flight: `threads / latency` (64 at 100 ms: 640 requests/s). A benchmark
whose requests/s come near the figure here for its latency measures the simulator (or the
client), not cohortsync: bench/full_sync.py and bench/budget_use.py measure it in their own
run with `measure()`. Needs neither PostgreSQL nor Redis.
"""

import argparse
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from full_sync import reference_bodies, run_reference, with_latency

NO_LIMIT = 10**9
# Client processes the other benchmarks' ceilings use: one Python client tops out near one core
# (its GIL) before the simulator does.
CEILING_CLIENTS = 2


def measure(
    url: str,
    threads: int,
    seconds: float,
    latency_ms: int,
    kind: str = "braze",
    clients: int = 1,
) -> tuple[float, float]:
    """Requests/s the simulator at `url` answers to `threads` bare keep-alive clients for about
    `seconds`, and the client's CPU share (near 100 % per core: the client is the limit). The
    simulator's Braze limit is lifted for it; the caller sets it again if it needs it. For
    AppsFlyer (10,000 devices a request) a fixed 4 requests per thread. `clients` processes
    share the threads, so one client's GIL is not the ceiling."""
    from connections.sandbox import DEMO_APPSFLYER_TOKEN, DEMO_BRAZE_KEY

    _common.control(url, "/config", {"braze_rate_limit": NO_LIMIT, "braze_rate_window": 1})
    with_latency(url, kind, latency_ms)
    if kind == "braze":
        # Enough for `seconds` at the faster of the in-flight bound and 2,000 requests/s.
        per_second = min(2000.0, threads / (latency_ms / 1000)) if latency_ms else 2000.0
        count, secret, import_key, batch = (
            max(threads * 4, int(per_second * seconds)),
            DEMO_BRAZE_KEY,
            "",
            75,
        )
    else:
        import_key = f"ceiling-{time.time_ns()}"
        _common.control(
            url,
            "/appsflyer/audiences",
            {"name": import_key, "platform": "android", "import_key": import_key},
        )
        count, secret, batch = threads * 4, DEMO_APPSFLYER_TOKEN, 10_000
    path, bodies = reference_bodies(kind, count * batch, "bench ceiling", import_key)
    run_reference(url, path, secret, bodies[: threads * 2], threads)  # warm up
    if clients > 1:
        elapsed, client_cpu = _in_processes(url, path, secret, bodies, threads, clients)
        return count / elapsed, client_cpu
    started = time.process_time()
    elapsed = run_reference(url, path, secret, bodies, threads)
    return count / elapsed, (time.process_time() - started) / elapsed


def _in_processes(
    url: str, path: str, secret: str, bodies: list[bytes], threads: int, clients: int
) -> tuple[float, float]:
    """Seconds for `clients` forked processes, each with its share of the threads and bodies,
    to post them all; and their CPU share together."""
    context = multiprocessing.get_context("fork")
    share = max(1, threads // clients)
    workers = [
        context.Process(target=run_reference, args=(url, path, secret, bodies[n::clients], share))
        for n in range(clients)
    ]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise SystemExit(f"A client process failed ({worker.exitcode})")
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    return elapsed, cpu / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 50, 100, 200])
    parser.add_argument("--threads", type=int, default=64, help="requests in flight")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement, about")
    parser.add_argument(
        "--clients", type=int, default=1, help="client processes sharing the threads"
    )
    args = parser.parse_args()
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")  # settings need one; unused
    _common.setup_django(need_postgres=False)
    print(
        f"{args.threads} requests in flight from {args.clients} client process(es), 75 objects "
        f"each; {_common.machine()}",
        flush=True,
    )
    rows = []
    for processes in args.processes:
        for latency_ms in args.latency_ms:
            with _common.simulator(processes=processes) as url:
                per_second, client_cpu = measure(
                    url, args.threads, args.seconds, latency_ms, clients=args.clients
                )
            bound = f"{args.threads / latency_ms * 1000:,.0f}" if latency_ms else "-"
            rows.append(
                [
                    f"{processes} process(es), {latency_ms} ms",
                    f"{per_second:,.0f}",
                    f"{per_second * 75:,.0f}",
                    bound,
                    f"{client_cpu:.0%}",
                ]
            )
            print(" ".join(str(cell) for cell in rows[-1]), flush=True)
    print()
    _common.table(rows, ["simulator", "requests/s", "members/s", "in-flight bound", "client CPU"])
    print("Braze's own limit: 1,000 requests/s (3,000 per 3 s) x 75 = 75,000 members/s")
    print(f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
