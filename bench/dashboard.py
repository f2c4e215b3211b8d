"""Dashboard pages under load: 10,000 syncs and 1,000,000 runs in PostgreSQL, next to a static file.

    DATABASE_URL=postgresql://.../cohortsync_dash [REDIS_URL=redis://...] \\
        python bench/dashboard.py --requests 400 --concurrency 8

Fills the database once (cohorts and syncs through the ORM, runs and their errors with
generate_series) and reuses the data set on later runs: give it a database of its own, and drop
that database to start over. Then starts gunicorn (DEBUG off, static files collected and served
by WhiteNoise), logs each client in through the login form, and times the home page, two sync
pages (a typical sync and one with 50,000 runs, also filtered), a run page with errors, and the
stylesheet, the floor: a request that crosses the same server and middleware but no view and no
database. It also counts each page's queries in-process, to show they do not grow with the data.
"""

import argparse
import os
import platform
import queue
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cohortsync.settings")
os.environ.setdefault("DEBUG", "true")

from inbound_import import gunicorn, redis_url, run_concurrently  # noqa: E402  (bench/ is on the path)

PREFIX = "bench-dash"
SYNCS = 10_000
RUNS = 1_000_000
HEAVY_RUNS = 50_000  # one sync with a long history: its page must not get slower
COHORTS = 2_000
CONNECTIONS = 20
VIEWER = f"{PREFIX}-viewer@example.com"
PASSWORD = "bench dashboard password 42"  # noqa: S105 -- a throwaway bench user
Result = tuple[float, list[float], int]


def insert_select(model: Any, expressions: dict[str, str], source: str) -> tuple[str, list[Any]]:
    """INSERT ... SELECT for every column of the model: the given SQL expressions, and each
    other field's default, so a column added later does not break the benchmark."""
    from django.db import connection

    columns, selects, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(field.column)
        if field.name in expressions:
            selects.append(expressions[field.name])
        else:
            selects.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    table = model._meta.db_table
    sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(selects)} {source}"
    return sql, params


def seed() -> None:
    """10,000 syncs over 2,000 cohorts and 20 connections; 1,000,000 runs over 90 days."""
    from django.db import connection, transaction
    from django.utils import timezone

    from cohorts.models import Cohort
    from connections.models import Connection
    from connections.partners import PARTNERS
    from connections.services import create_connection
    from core.roles import Role
    from core.users import create_user
    from syncs.models import Sync, SyncRun, SyncRunError

    now = timezone.now()
    started = time.perf_counter()
    connections = [
        create_connection(
            kind="braze",
            name=f"{PREFIX} Braze {n:02d}",
            config=PARTNERS["braze"].parse_config(
                {"instance": "custom", "custom_endpoint": "https://rest.iad-01.braze.com"}
            ),
            secret="braze-rest-key-0000-1a2b",  # noqa: S106 -- never called
            actor=None,
        )
        for n in range(CONNECTIONS)
    ]
    Connection.objects.filter(pk__in=[c.pk for c in connections[:2]]).update(
        state=Connection.State.NEEDS_ATTENTION, last_error="Braze refused the REST key (401)."
    )
    cohorts = Cohort.objects.bulk_create(
        Cohort(
            name=f"{PREFIX} cohort {n:04d}",
            source=Cohort.Source.MANUAL,
            member_count=(n * 7919) % 200_000,
            # A tenth have not changed for more than a week: the stale list is never empty.
            updated_at=now - timedelta(hours=(n * 37) % (24 * (8 if n % 10 == 0 else 6))),
        )
        for n in range(COHORTS)
    )
    kinds = ["hourly", "hourly", "daily", "realtime", "once"]
    syncs = Sync.objects.bulk_create(
        Sync(
            name=f"{PREFIX} sync {n:05d}",
            cohort=cohorts[n % COHORTS],
            connection=connections[n % CONNECTIONS],
            status=Sync.Status.NEEDS_ATTENTION if n % CONNECTIONS < 2 else Sync.Status.ACTIVE,
            identifier_mapping=["external_id"],
            cadence={"kind": kinds[n % 5]}
            if kinds[n % 5] != "daily"
            else {"kind": "daily", "time_of_day": "09:00", "timezone": "UTC"},
            next_run_at=now + timedelta(minutes=n % 1440),
        )
        for n in range(SYNCS)
    )
    ids = [sync.pk for sync in syncs]
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = insert_select(
            SyncRun,
            {
                # The first sync gets the long history; the others share the rest.
                "sync": f"CASE WHEN g <= {HEAVY_RUNS} THEN ids[1] ELSE ids[1 + g %% {SYNCS}] END",
                "trigger": "(ARRAY['schedule','schedule','manual','realtime','api'])[1 + (g %% 5)]",
                "status": "CASE WHEN r < 0.03 THEN 'failed' WHEN r < 0.08 THEN 'partially_failed'"
                " WHEN r < 0.09 THEN 'skipped' ELSE 'succeeded' END",
                "queued_at": "now() - t * interval '90 days'",
                "started_at": "now() - t * interval '90 days' + interval '1 second'",
                "finished_at": "now() - t * interval '90 days' + interval '40 seconds'",
                "planned_adds": "(a + CASE WHEN r < 0.08 THEN f ELSE 0 END)",
                "planned_removes": "b",
                "added": "a",
                "removed": "b",
                "failed": "CASE WHEN r < 0.08 THEN f ELSE 0 END",
                "requests": "1 + a / 75",
                "error_summary": "CASE WHEN r < 0.03 THEN 'Braze answered 500 five times' "
                "ELSE '' END",
            },
            f"FROM (SELECT g, random() AS r, random() AS t, (random() * 2000)::int AS a, "  # noqa: S608
            f"(random() * 300)::int AS b, (random() * 50)::int AS f "
            f"FROM generate_series(1, {RUNS}) AS g) AS s, (SELECT %s::bigint[] AS ids) AS i",
        )
        cursor.execute(sql, [*params, ids])
        run_table = SyncRun._meta.db_table
        # A few runs held by the mass-removal guard, unfinished like real ones.
        cursor.execute(
            f"UPDATE {run_table} SET status = 'held', finished_at = NULL, planned_removes = 5000 "  # noqa: S608
            f"WHERE id IN (SELECT id FROM {run_table} WHERE sync_id = ANY(%s) "
            "ORDER BY random() LIMIT 30)",
            [ids[1:]],
        )
        # Some errors: three on every failed run, four reasons.
        sql, params = insert_select(
            SyncRunError,
            {
                "run": "id",
                "operation": "'add'",
                "member": "'external_id:user-' || id || '-' || k",
                "reason": "(ARRAY['Invalid alias','Profile not found','Rate limited','Bad id'])"
                "[1 + (id + k) %% 4]",
                "partner_status": "400",
                "created_at": "finished_at",
            },
            f"FROM {run_table}, generate_series(1, 3) AS k "
            "WHERE status IN ('failed', 'partially_failed') AND sync_id = ANY(%s)",
        )
        cursor.execute(sql, [*params, ids])
        # Each sync carries its latest run's outcome, as finish_run leaves it.
        cursor.execute(
            f"UPDATE {Sync._meta.db_table} s SET last_run_status = r.status, "  # noqa: S608
            "last_run_at = r.finished_at, last_run_summary = '+' || r.added || ' -' || r.removed "
            f"FROM (SELECT DISTINCT ON (sync_id) sync_id, status, finished_at, added, removed "
            f"FROM {run_table} WHERE sync_id = ANY(%s) ORDER BY sync_id, queued_at DESC) r "
            "WHERE r.sync_id = s.id",
            [ids],
        )
    with connection.cursor() as cursor:
        for model in (Cohort, Sync, SyncRun, SyncRunError):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    create_user(email=VIEWER, role=Role.VIEWER, password=PASSWORD, check_password=False)
    print(f"seeded in {time.perf_counter() - started:.0f} s")


def prepare() -> dict[str, str]:
    """The data set (made once), and the pages to time as name -> path."""
    from django.db.models import Count

    from syncs.models import Sync, SyncRun

    bench_syncs = Sync.objects.filter(name__startswith=PREFIX)
    found = bench_syncs.count()
    if found == 0:
        if Sync.objects.exists():
            raise SystemExit("This database holds syncs of its own: give the benchmark its own.")
        seed()
    elif found != SYNCS:
        raise SystemExit(f"Found {found} benchmark syncs, not {SYNCS}: drop the database.")
    heavy = bench_syncs.order_by("id").first()
    typical = bench_syncs.order_by("id")[SYNCS // 2]
    assert heavy is not None
    run = (
        SyncRun.objects.filter(sync=heavy, status="partially_failed")
        .annotate(errors_count=Count("errors"))
        .order_by("-queued_at")
        .first()
    )
    assert run is not None
    return {
        "home": "/",
        "sync, typical": f"/syncs/{typical.pk}/",
        "sync, 50k runs": f"/syncs/{heavy.pk}/",
        "sync, 50k, filter": f"/syncs/{heavy.pk}/?status=failed&trigger=manual",
        "run page": f"/syncs/{heavy.pk}/runs/{run.pk}/",
    }


def count_queries(pages: dict[str, str]) -> dict[str, int]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="localhost")
    client.force_login(get_user_model().objects.get(username=VIEWER))
    counts = {}
    for name, path in pages.items():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200, path
        counts[name] = len(captured)
    return counts


def collect_static(env: dict[str, str]) -> None:
    """DEBUG off serves hashed names from a manifest: collect them as a deploy would."""
    from django.conf import settings

    production = {
        **os.environ,
        **env,
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "COHORTSYNC_ENCRYPTION_KEYS": ",".join(settings.COHORTSYNC_ENCRYPTION_KEYS),
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=BASE_DIR,
        env=production,
        check=True,
    )


def _over_http(session: Any) -> None:
    """DEBUG off marks the cookies Secure; the server here speaks plain http behind no proxy."""
    for cookie in session.cookies:
        cookie.secure = False


def logged_in_sessions(url: str, count: int) -> "queue.Queue[Any]":
    """One session per client, each signed in through the login form like a browser."""
    import requests

    sessions: queue.Queue[Any] = queue.Queue()
    for _ in range(count):
        session = requests.Session()
        form = session.get(f"{url}/accounts/login/", timeout=30)
        _over_http(session)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, "no CSRF token on the login page"
        answer = session.post(
            f"{url}/accounts/login/",
            data={"username": VIEWER, "password": PASSWORD, "csrfmiddlewaretoken": token[1]},
            headers={"Referer": f"{url}/accounts/login/"},
            timeout=30,
            allow_redirects=False,
        )
        assert answer.status_code == 302, f"login failed: {answer.status_code}"
        _over_http(session)
        sessions.put(session)
    return sessions


def bench_page(url: str, sessions: "queue.Queue[Any]", requests_: int, concurrency: int) -> Result:
    def get(_: int) -> bool:
        session = sessions.get()
        try:
            response = session.get(url, timeout=60, allow_redirects=False)
        finally:
            sessions.put(session)
        if response.status_code != 200:
            print(f"  {response.status_code} {url}", file=sys.stderr)
        return response.status_code == 200

    run_concurrently(list(range(concurrency * 2)), concurrency, get)  # warm up
    return run_concurrently(list(range(requests_)), concurrency, get)


def report(results: dict[str, Result], queries: dict[str, int]) -> None:
    def percentile(values: list[float], fraction: float) -> float:
        return sorted(values)[min(len(values) - 1, int(fraction * len(values)))] * 1000

    floor = percentile(results["static (floor)"][1], 0.95)
    print(f"\n{'page':20}{'queries':>8}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p95/floor':>10}"
          f"{'failed':>7}")  # fmt: skip
    for name, (seconds, latencies, failed) in results.items():
        p95 = percentile(latencies, 0.95)
        print(
            f"{name:20}{queries.get(name, 0):>8}{len(latencies) / seconds:>8.0f}"
            f"{percentile(latencies, 0.5):>8.1f}{p95:>8.1f}{p95 / floor:>10.1f}{failed:>7}"
        )
    print("target: p95 < 150 ms for every page; queries independent of the rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="timed requests per page")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit(
            "This benchmark measures PostgreSQL: set DATABASE_URL=postgresql://user@host/db "
            "(a database of its own: the data set stays there for the next run)."
        )
    with redis_url() as redis:
        os.environ["REDIS_URL"] = redis
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        pages = prepare()
        queries = count_queries(pages)
        pg_major = connection.pg_version // 10000  # type: ignore[attr-defined]
        print(
            f"{SYNCS:,} syncs, {RUNS:,} runs; {args.requests} requests per page after "
            f"{args.concurrency * 2} to warm up; concurrency {args.concurrency}; "
            f"{args.workers} gunicorn workers; {os.cpu_count()} CPUs; "
            f"Python {platform.python_version()}; PostgreSQL {pg_major}"
        )
        env = {"DATABASE_URL": database_url, "REDIS_URL": redis}
        collect_static(env)
        connection.close()  # the server's workers must not inherit it
        with gunicorn(args.workers, env) as url:
            sessions = logged_in_sessions(url, args.concurrency)
            home = sessions.get()
            stylesheet = re.search(r'href="(/static/css/app[^"]*\.css)"', home.get(url).text)
            sessions.put(home)
            assert stylesheet, "no stylesheet link on the home page"
            targets = {"static (floor)": stylesheet[1], **pages}
            results = {
                name: bench_page(url + path, sessions, args.requests, args.concurrency)
                for name, path in targets.items()
            }
    report(results, queries)


if __name__ == "__main__":
    main()
