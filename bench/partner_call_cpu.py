"""The CPU one partner request costs the worker: a 75-object Braze `/users/track` POST.

    DEBUG=true .venv/bin/python bench/partner_call_cpu.py [--requests 3000]

One thread, keep-alive, against `manage.py partner_sandbox` in a process of its own (its Braze
rate limit lifted). `time.thread_time()` around each request counts this thread's CPU only, not
the time spent waiting for the answer. Three clients over the same bodies:
`connections/partners/http.py:call` with the client the engine keeps for a run (JSON encoding,
egress checks, the exchange note and the answer's decoding included), urllib3's
`HTTPConnectionPool.urlopen` with a pre-encoded body, and bare `http.client`, the floor. Among
the engine's sending threads, which share one interpreter lock, the first figure is what a
request takes from the run. Needs neither PostgreSQL nor Redis.
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from full_sync import reference_bodies

NO_LIMIT = 10**9


def cpu_per_request(send: Callable[[bytes], Any], bodies: list[bytes]) -> float:
    """Median µs of this thread's CPU per request, after a warm-up of 100 requests."""
    for body in bodies[:100]:
        send(body)
    spent = []
    for body in bodies:
        started = time.thread_time()
        send(body)
        spent.append(time.thread_time() - started)
    return statistics.median(spent) * 1e6


def through_call(url: str, secret: str) -> Callable[[bytes], Any]:
    from connections.partners import http as partner_http

    client: Any
    try:
        from core.egress_client import EgressClient

        client, keyword = EgressClient(), "client"
    except ImportError:  # before the urllib3 client: a requests session, as the engine kept
        import requests

        client, keyword = requests.Session(), "session"

    def send(body: bytes) -> Any:
        # call() encodes the payload itself: hand it the object, as a partner adapter does.
        payload = json.loads(body)
        return partner_http.call(
            "POST", f"{url}/users/track", secret=secret, payload=payload, **{keyword: client}
        )

    return send


def through_urllib3(url: str, secret: str) -> Callable[[bytes], Any]:
    import urllib3

    parts = urlsplit(url)
    pool = urllib3.HTTPConnectionPool(parts.hostname or "", parts.port, retries=False)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    def send(body: bytes) -> Any:
        return pool.urlopen("POST", "/users/track", body=body, headers=headers).data

    return send


def through_http_client(url: str, secret: str) -> Callable[[bytes], Any]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    def send(body: bytes) -> Any:
        connection.request("POST", "/users/track", body=body, headers=headers)
        return connection.getresponse().read()

    return send


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")  # settings need one; unused
    _common.setup_django(need_postgres=False)
    from connections.sandbox import DEMO_BRAZE_KEY

    _, bodies = reference_bodies("braze", args.requests * 75, "bench", "")
    with _common.simulator(rate_limit=NO_LIMIT, processes=1) as url:
        print(f"{len(bodies):,} requests of 75 objects each; {_common.machine()}")
        for name, make in (
            ("call() (connections/partners/http.py)", through_call),
            ("urllib3 HTTPConnectionPool.urlopen", through_urllib3),
            ("http.client", through_http_client),
        ):
            micros = cpu_per_request(make(url, DEMO_BRAZE_KEY), bodies)
            print(f"{name:40} {micros:6.0f} µs CPU per request (median)")


if __name__ == "__main__":
    main()
