"""The partner simulator's own ceiling: how many Braze requests/s it answers on this machine.

    DEBUG=true .venv/bin/python bench/simulator_ceiling.py [--threads 1 2 4 8] [--requests 4000]

The bare reference client of bench/full_sync.py (`requests`, keep-alive, pre-built 75-object
`/users/track` bodies) with 1, 2, 4 and 8 threads against `manage.py partner_sandbox` in a
process of its own, its Braze rate limit lifted so that only its CPU limits it. The simulator is
a ThreadingHTTPServer (one thread per connection) in one Python process: the GIL lets it use
about one core, whatever the thread count. A benchmark whose requests/s come near the highest
figure here measures the simulator, not cohortsync. Needs neither PostgreSQL nor Redis.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from full_sync import reference_bodies, run_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--requests", type=int, default=4000, help="per thread count")
    args = parser.parse_args()
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")  # settings need one; unused
    _common.setup_django(need_postgres=False)
    from connections.sandbox import DEMO_BRAZE_KEY

    members = args.requests * 75
    path, bodies = reference_bodies("braze", members, "bench ceiling", "")
    print(f"{args.requests:,} requests of 75 objects per run; {_common.machine()}", flush=True)
    rows = []
    for threads in args.threads:
        with _common.simulator(rate_limit=10**9) as url:
            run_reference(url, path, DEMO_BRAZE_KEY, bodies[:200], threads)  # warm up
            started = time.process_time()
            seconds = run_reference(url, path, DEMO_BRAZE_KEY, bodies, threads)
            client_cpu = time.process_time() - started
        rows.append(
            [
                f"{threads} thread(s)",
                f"{args.requests / seconds:,.0f}",
                f"{members / seconds:,.0f}",
                f"{client_cpu / seconds:.0%}",
            ]
        )
    print()
    _common.table(rows, ["client", "requests/s", "members/s", "client CPU"])
    print("Braze's own limit: 1,000 requests/s (3,000 per 3 s) x 75 = 75,000 members/s")


if __name__ == "__main__":
    main()
