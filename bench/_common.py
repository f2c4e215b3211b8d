"""What the sync benchmarks share: Django on PostgreSQL, the simulator in a process of its own,
cohorts filled in SQL, a sync run in a worker process of its own, the machine line, and where
the box's CPU went (by process group, and context switches).

Imported by the sync benchmarks and by bench/_worker.py (the CPU readings); not by the import
benchmarks, which predate it.
"""

import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
if (ROOT / ".venv" / "bin" / "python").exists():
    PYTHON = str(ROOT / ".venv" / "bin" / "python")
RSS_BOUND_MB = 300


def setup_django(*, need_postgres: bool = True) -> None:
    """Django against DATABASE_URL, migrated; without `need_postgres`, no database is used."""
    database_url = os.environ.get("DATABASE_URL", "")
    if need_postgres and not database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit(
            "This benchmark measures PostgreSQL: set DATABASE_URL=postgresql://user@host/db "
            "and REDIS_URL=redis://host:port/db."
        )
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("Set REDIS_URL=redis://host:port/db (the rate limit and the job queue).")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cohortsync.settings")
    os.environ.setdefault("DEBUG", "true")
    # The simulator speaks plain http on 127.0.0.1.
    os.environ["COHORTSYNC_ALLOW_INSECURE_ENDPOINTS"] = "true"
    import django

    django.setup()
    from django.core.management import call_command

    if need_postgres:
        call_command("migrate", verbosity=0)


def machine() -> str:
    from django.db import connection

    cpu = "unknown CPU"
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    database = connection.vendor if os.environ.get("DATABASE_URL") else "no database"
    if database == "postgresql":
        database = f"PostgreSQL {connection.pg_version // 10000}"  # type: ignore[attr-defined]
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {database}; "
        f"load average {load}"
    )


# Simulator processes the sync benchmarks start (`partner_sandbox --processes`): one Python
# process answers about 700 Braze requests/s here, below Braze's own 1,000.
SIMULATOR_PROCESSES = 2


@contextmanager
def simulator(
    *, rate_limit: int | None = None, processes: int = SIMULATOR_PROCESSES
) -> Iterator[str]:
    """`manage.py partner_sandbox` in processes of its own, as a partner would be; its URL.

    `rate_limit` replaces Braze's 3,000 requests per 3 s with that many per second (a ceiling
    run lifts it, to measure the simulator's CPU and not the limit it enforces). `processes`
    serve the port together, their rate limits shared.
    """
    env = {**os.environ, "DEBUG": "true"}
    process = subprocess.Popen(
        [PYTHON, "manage.py", "partner_sandbox", "--port", "0", "--processes", str(processes)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"(http://\S+)", line)
        if not found:
            raise SystemExit(f"The simulator did not start: {line!r}")
        url = found.group(1)
        if rate_limit is not None:
            control(url, "/config", {"braze_rate_limit": rate_limit, "braze_rate_window": 1})
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def control(url: str, route: str, payload: dict[str, Any] | None = None) -> Any:
    import requests

    if payload is None:
        response = requests.get(f"{url}/_sandbox{route}", timeout=60)
    else:
        response = requests.post(f"{url}/_sandbox{route}", json=payload, timeout=60)
    response.raise_for_status()
    return response.json()


def make_connection(kind: str, url: str, name: str, **config: Any) -> Any:
    from connections.partners import PARTNERS
    from connections.sandbox import DEMO_APPSFLYER_TOKEN, DEMO_BRAZE_KEY
    from connections.services import create_connection

    if kind == "braze":
        data: dict[str, Any] = {"instance": "custom", "custom_endpoint": url}
        secret = DEMO_BRAZE_KEY
    else:
        data = {"app_id": "com.example.app", "platform": "android", "api_host": url}
        secret = DEMO_APPSFLYER_TOKEN
    data.update(config)
    return create_connection(
        kind=kind, name=name, config=PARTNERS[kind].parse_config(data), secret=secret, actor=None
    )


def make_cohort(name: str, members: int, *, first: int = 0) -> Any:
    from cohorts.models import Cohort

    cohort = Cohort.objects.create(name=name, source=Cohort.Source.MANUAL)
    add_members(cohort.pk, first, first + members)
    return cohort


def add_members(cohort_id: int, first: int, stop: int) -> None:
    """Members `user-<n>` for n in [first, stop), written by PostgreSQL itself."""
    from django.db import connection

    from cohorts.models import Cohort, CohortMember

    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {CohortMember._meta.db_table} "  # noqa: S608
            "(cohort_id, id_type, alias_label, value, added_at) "
            "SELECT %s, 'external_id', '', 'user-' || lpad(n::text, 8, '0'), now() "
            "FROM generate_series(%s, %s) AS n",
            [cohort_id, first, stop - 1],
        )
        cursor.execute(f"ANALYZE {CohortMember._meta.db_table}")
    count = CohortMember.objects.filter(cohort_id=cohort_id).count()
    Cohort.objects.filter(pk=cohort_id).update(member_count=count)


def make_sync(cohort: Any, connection: Any, *, name: str = "", **extra: Any) -> Any:
    from syncs.services import create_sync

    return create_sync(
        name=name or f"bench {cohort.name}",
        cohort=cohort,
        connection=connection,
        identifier_mapping=["external_id"],
        cadence={"kind": "once"},
        actor=None,
        **extra,
    )


def queue_run(sync: Any) -> int:
    """A queued run for the benchmark's worker; no RQ job, the worker is ours."""
    from syncs.models import SyncRun

    return SyncRun.objects.create(sync=sync, trigger=SyncRun.Trigger.MANUAL).pk


def run_in_worker(
    run_id: int,
    *,
    script: str = "_worker.py",
    args: Sequence[str] = (),
    checkout: Path = ROOT,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """bench/_worker.py runs the run in a fresh process; its timings and its own peak RSS.
    (`script`: another job's runner, e.g. _pull_worker.py for an Amplitude pull; `checkout`:
    another checkout of the project whose code runs the run, for bench/ab_full_sync.py;
    `extra_env`: settings of that run's own.)"""
    from django.conf import settings

    # A production worker: DEBUG off, or Django keeps the last 9,000 queries in memory (about
    # 120 MB of ledger INSERTs) and the RSS measures that log. Same keys as this process.
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "COHORTSYNC_ENCRYPTION_KEYS": ",".join(settings.COHORTSYNC_ENCRYPTION_KEYS),
        "ALLOWED_HOSTS": "127.0.0.1",
        **(extra_env or {}),
    }
    started = time.perf_counter()
    command = [PYTHON, str(checkout / "bench" / script), str(run_id), *args]
    if os.environ.get("BENCH_PYSPY"):
        # A sampled profile of the run (py-spy, installed by hand: not a project dependency).
        profile = os.environ["BENCH_PYSPY"]
        spy = [str(Path(PYTHON).parent / "py-spy"), "record", "-r", "200", "-o", profile]
        command = [
            *spy,
            "--format",
            "raw",
            *os.environ.get("BENCH_PYSPY_ARGS", "").split(),
            "--",
            *command,
        ]
    process = subprocess.Popen(
        command,
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"The worker failed ({process.returncode}): {output[-2000:]}")
    figures: dict[str, Any] = json.loads(
        [line for line in output.splitlines() if line.startswith("{")][-1]
    )
    figures["process_seconds"] = time.perf_counter() - started
    # The worker reports its own VmHWM; ru_maxrss includes this process's peak (vfork + exec).
    figures.setdefault("peak_rss_mb", usage.ru_maxrss / 1024)  # KiB on Linux
    return figures


def drop_cohort(cohort: Any) -> None:
    """Deleted in SQL: the ORM would load a million members and ledger rows to cascade."""
    from django.db import connection

    from cohorts.models import CohortMember
    from syncs.models import Sync, SyncedMember, SyncRemoval, SyncRun, SyncRunEvent, SyncRunPlanItem

    sync_ids = list(Sync.objects.filter(cohort=cohort).values_list("pk", flat=True))
    with connection.cursor() as cursor:
        for model in (SyncedMember, SyncRemoval):
            cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE sync_id = ANY(%s)",  # noqa: S608
                [sync_ids],
            )
        cursor.execute(
            f"DELETE FROM {SyncRunEvent._meta.db_table} WHERE run_id IN "  # noqa: S608
            f"(SELECT id FROM {SyncRun._meta.db_table} WHERE sync_id = ANY(%s))",
            [sync_ids],
        )
        cursor.execute(
            f"DELETE FROM {CohortMember._meta.db_table} WHERE cohort_id = %s",  # noqa: S608
            [cohort.pk],
        )
    Sync.objects.filter(pk__in=sync_ids).delete()
    cohort.delete()
    # A million dead rows left to autovacuum (a minute or more away) would slow the next
    # measurement: PostgreSQL's planner probes the ends of an index through its dead entries
    # (15-20 ms a page query), and inserts wade through them. Measure from a clean state.
    with connection.cursor() as cursor:
        for table in (
            CohortMember._meta.db_table,
            SyncedMember._meta.db_table,
            SyncRemoval._meta.db_table,
            SyncRunEvent._meta.db_table,
            SyncRunPlanItem._meta.db_table,
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """A small fixed-width table: the first column left, the others right."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [str(row[0]).ljust(widths[0])]
        cells += [str(cell).rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells))


# What shares the box during a run, by process: the CPU each group used is where the box's two
# cores went (a run bound by the box can only go faster by taking work off one of them).
CPU_GROUPS = {"postgres": "PostgreSQL", "redis-server": "Redis", "valkey-server": "Redis"}
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def box_cpu() -> dict[str, float]:
    """CPU seconds used so far by the box's live processes, grouped: PostgreSQL, Redis, the
    simulator (`partner_sandbox`), this benchmark process; and the box's idle seconds (all
    cores). Two readings' difference is what a run cost each. A process that ended between
    them (the worker) is not in it: it reports its own."""
    groups = {"PostgreSQL": 0.0, "Redis": 0.0, "simulator": 0.0, "benchmark": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # it ended while we looked
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # utime + stime
        if comm == "postgres":
            # and its ended children's: a backend ends with its connection (the worker's is
            # gone when this is read), and the postmaster counts it
            seconds += (int(fields[13]) + int(fields[14])) / TICKS_PER_SECOND
        if int(stat.parent.name) == os.getpid():
            groups["benchmark"] += seconds
        elif b"partner_sandbox" in cmdline:
            groups["simulator"] += seconds
        elif comm in CPU_GROUPS:
            groups[CPU_GROUPS[comm]] += seconds
    groups["idle"] = box_idle()
    return groups


def box_idle() -> float:
    """Seconds the box's cores have been idle (all cores, idle + iowait)."""
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()
    return (int(cpu[4]) + int(cpu[5])) / TICKS_PER_SECOND


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


def context_switches() -> int:
    """This process's context switches so far, all its threads (ended ones too): put to sleep
    (a lock, a socket, a condition) or pre-empted."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw
