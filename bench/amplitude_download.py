"""Amplitude cohort download: a 1,000,000-member cohort with two properties pulled from the
simulated Amplitude and applied, next to a bare `COPY` of the same file into PostgreSQL.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cohortsync_ampbench \\
    REDIS_URL=redis://127.0.0.1:6379/3 \\
        .venv/bin/python bench/amplitude_download.py [--members 1000000] [--no-props]

The simulator runs in a process of its own (`manage.py partner_sandbox`) and serves the file
over real HTTP: /file answers a 302 to a short-lived storage link, as Amplitude does for a large
file. The pull is the worker's own job (`cohorts.pulls.run.run_pull`: request, poll, download to
a temporary file, read it back as a stream, replace the members in one transaction), run in a
fresh process with DEBUG off (bench/_pull_worker.py), whose own peak RSS it reports. It runs
twice: into the empty cohort (1,000,000 added), then the same members again (nothing changes).
While the first one applies, this process counts the cohort's members now and then from a
connection of its own: an atomic replace shows only 0 or all of them.

The reference, in the same run: the same export requested, polled and downloaded with a bare
`requests` client, then `COPY ... FROM STDIN (FORMAT csv, HEADER)` of that file into a plain
table of text columns. Targets (docs/architecture.md §7): the pull applies at least 50 % of
COPY's members/s; the process doing the apply stays under 300 MB of RSS.
"""

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

TARGET_RATIO = 0.5
COHORT_ID = "bench-1m"
PROPERTIES = ("plan", "country")
PLANS = ("trial", "starter", "pro")
COUNTRIES = ("US", "DE", "FR", "BR", "JP", "IN")
SEED_CHUNK = 100_000  # members per control request: about 8 MB, under the 10 MB body limit
SOURCE_NAME = "bench amplitude source"
REFERENCE_TABLE = "bench_amplitude_copy"
FLOOR_TABLE = "bench_members_floor"
SAMPLE_EVERY_SECONDS = 2.0


def seed_simulator(url: str, members: int) -> None:
    """The cohort in the simulator, in requests of SEED_CHUNK members. The file's order is
    Amplitude's (undocumented): here by amplitude_id, the user_ids shuffled against it by a
    fixed permutation, so the apply cannot profit from a file sorted by user_id."""
    stride = next(s for s in range(7919, 2 * members + 7919) if math.gcd(s, members) == 1)
    for start in range(0, members, SEED_CHUNK):
        chunk = [
            {
                "amplitude_id": str(1_000_000_000 + n),
                "user_id": f"user-{n * stride % members:08d}",
                "plan": PLANS[n % len(PLANS)],
                "country": COUNTRIES[n % len(COUNTRIES)],
            }
            for n in range(start, min(start + SEED_CHUNK, members))
        ]
        body = {"id": COHORT_ID, "name": "Bench 1M", "members": chunk, "append": start > 0}
        _common.control(url, "/amplitude/cohorts", body)


def make_pull(url: str) -> Any:
    from cohorts.pulls.services import create_pull
    from connections.partners.amplitude import Amplitude
    from connections.sandbox import DEMO_AMPLITUDE_API_KEY, DEMO_AMPLITUDE_SECRET_KEY
    from connections.services import create_connection

    forget_earlier_run()
    source = create_connection(
        kind="amplitude",
        name=SOURCE_NAME,
        config=Amplitude.parse_config(Amplitude.simulator_config(url)),
        secret=Amplitude.pack_secret(
            {"api_key": DEMO_AMPLITUDE_API_KEY, "secret_key": DEMO_AMPLITUDE_SECRET_KEY}
        ),
        actor=None,
    )
    return create_pull(
        connection=source,
        amplitude_cohort_id=COHORT_ID,
        name="Bench 1M",
        cadence="once",
        actor=None,
    )


def forget_earlier_run() -> None:
    """The cohort, its members and the source of a run that stopped half-way, dropped in SQL."""
    from django.db import connection

    from cohorts.models import Cohort, CohortMember
    from connections.models import Connection

    cohort_ids = list(
        Cohort.objects.filter(partner="amplitude", partner_cohort_id=COHORT_ID).values_list(
            "pk", flat=True
        )
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {CohortMember._meta.db_table} WHERE cohort_id = ANY(%s)",  # noqa: S608
            [cohort_ids],
        )
        cursor.execute(f"DROP TABLE IF EXISTS {REFERENCE_TABLE}")
        cursor.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
    Cohort.objects.filter(name="bench floor").delete()
    Cohort.objects.filter(pk__in=cohort_ids).delete()
    Connection.objects.filter(name=SOURCE_NAME).delete()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {CohortMember._meta.db_table}")


class MemberCounter:
    """Counts the cohort's members every few seconds from a connection of its own (what a
    sync's reader sees) while a pull runs: the distinct counts seen."""

    def __init__(self, cohort_id: int) -> None:
        self.cohort_id = cohort_id
        self.seen: set[int] = set()
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
            while not self.stop.wait(SAMPLE_EVERY_SECONDS):
                row = connection.execute(
                    "SELECT count(*) FROM cohorts_cohortmember WHERE cohort_id = %s",
                    [self.cohort_id],
                ).fetchone()
                assert row is not None
                self.seen.add(int(row[0]))
                self.samples += 1

    def __enter__(self) -> "MemberCounter":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
            row = connection.execute(
                "SELECT count(*) FROM cohorts_cohortmember WHERE cohort_id = %s",
                [self.cohort_id],
            ).fetchone()
        assert row is not None
        self.seen.add(int(row[0]))  # and once after the pull
        self.samples += 1


def pull_in_worker(pull_id: int, properties: list[str]) -> dict[str, Any]:
    figures = _common.run_in_worker(pull_id, script="_pull_worker.py", args=properties)
    if figures["status"] != "succeeded":
        raise SystemExit(f"The pull failed: {figures}")
    return figures


def reference_download(url: str, properties: list[str], into: Any) -> float:
    """Seconds to request, poll and download the same export with a bare client."""
    from connections.sandbox import DEMO_AMPLITUDE_API_KEY, DEMO_AMPLITUDE_SECRET_KEY

    auth = (DEMO_AMPLITUDE_API_KEY, DEMO_AMPLITUDE_SECRET_KEY)
    query = [("props", "1"), *(("propKeys", p) for p in properties)] if properties else []
    with requests.Session() as session:
        return _download(session, url, auth, query, into)


def _download(session: Any, url: str, auth: Any, query: Any, into: Any) -> float:
    started = time.perf_counter()
    request_id = session.get(
        f"{url}/api/5/cohorts/request/{COHORT_ID}", params=query or {"props": "0"}, auth=auth
    ).json()["request_id"]
    status_url = f"{url}/api/5/cohorts/request-status/{request_id}"
    while session.get(status_url, auth=auth).status_code == 202:
        pass  # the simulator is set to complete at the first poll; a bare client would wait
    answer = session.get(
        f"{url}/api/5/cohorts/request/{request_id}/file", auth=auth, allow_redirects=False
    )
    with session.get(answer.headers["Location"], stream=True, timeout=120) as file:
        file.raise_for_status()
        for chunk in file.iter_content(64 * 1024):
            into.write(chunk)
    into.flush()
    return time.perf_counter() - started


def reference_copy(path: str) -> tuple[float, float, float]:
    """Seconds for COPY of the file into a plain table of its columns, in one transaction;
    then, as floors of any design that keeps the members table as it is, seconds to INSERT
    those rows (sorted, the cheapest order) into an empty copy of the members table with its
    indexes, without and with its foreign key to the cohort (checked row by row when the
    transaction commits)."""
    from django.db import connection, transaction

    with open(path, encoding="utf-8") as file:
        header = file.readline().strip().split(",")
    columns = ", ".join(f"{name} text" for name in header)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {REFERENCE_TABLE}")
        cursor.execute(f"CREATE TABLE {REFERENCE_TABLE} ({columns})")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor, open(path, "rb") as file:
        sql = f"COPY {REFERENCE_TABLE} FROM STDIN (FORMAT csv, HEADER true)"
        with cursor.copy(sql) as copy:
            while chunk := file.read(1024 * 1024):
                copy.write(chunk)
    seconds = time.perf_counter() - started
    indexed = insert_into_members_copy(foreign_key=False)
    with_foreign_key = insert_into_members_copy(foreign_key=True)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {REFERENCE_TABLE}")
    return seconds, indexed, with_foreign_key


def insert_into_members_copy(*, foreign_key: bool) -> float:
    from django.db import connection, transaction

    from cohorts.models import Cohort, CohortMember

    members = CohortMember._meta.db_table
    cohort = Cohort.objects.create(name="bench floor", source=Cohort.Source.MANUAL)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
        cursor.execute(f"CREATE TABLE {FLOOR_TABLE} (LIKE {members} INCLUDING ALL)")
        if foreign_key:
            cursor.execute(
                f"ALTER TABLE {FLOOR_TABLE} ADD FOREIGN KEY (cohort_id) REFERENCES "
                f"{Cohort._meta.db_table} (id) DEFERRABLE INITIALLY DEFERRED"
            )
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {FLOOR_TABLE} (cohort_id, added_at, id_type, alias_label, value) "  # noqa: S608
            f"SELECT %s, now(), 'external_id', '', user_id FROM {REFERENCE_TABLE} "
            "ORDER BY user_id",
            [cohort.pk],
        )
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {FLOOR_TABLE}")
    cohort.delete()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument(
        "--no-props",
        action="store_true",
        help="ask the export for no properties (what the product asks until members keep them)",
    )
    args = parser.parse_args()
    properties = [] if args.no_props else list(PROPERTIES)
    _common.setup_django()
    print(
        f"{args.members:,} members, properties: {', '.join(properties) or 'none'}; "
        f"{_common.machine()}",
        flush=True,
    )
    from cohorts.models import AmplitudePull

    # One process: the simulator's Amplitude download keeps its files in the process that made
    # them (partner_sandbox --processes refuses it).
    with _common.simulator(processes=1) as url:
        seed_simulator(url, args.members)
        _common.control(url, "/amplitude/config", {"polls": 0})
        pull = make_pull(url)
        try:
            with MemberCounter(pull.cohort_id) as counter:
                first = pull_in_worker(pull.pk, properties)
            AmplitudePull.objects.filter(pk=pull.pk).update(status="waiting")
            second = pull_in_worker(pull.pk, properties)
            with tempfile.NamedTemporaryFile("wb", suffix=".csv") as file:
                download_seconds = reference_download(url, properties, file)
                file_mb = os.path.getsize(file.name) / 1e6
                copy_seconds, *floors = reference_copy(file.name)
        finally:
            forget_earlier_run()
    report(args.members, first, second, counter, download_seconds, copy_seconds, file_mb)
    indexed, with_foreign_key = floors
    print(
        f"Floors: the same rows INSERTed into an empty copy of the members table with its "
        f"indexes: {indexed:.1f} s ({args.members / indexed:,.0f} members/s); with its foreign "
        f"key too: {with_foreign_key:.1f} s ({args.members / with_foreign_key:,.0f} members/s)"
    )


def report(
    members: int,
    first: dict[str, Any],
    second: dict[str, Any],
    counter: MemberCounter,
    download_seconds: float,
    copy_seconds: float,
    file_mb: float,
) -> None:
    if first["members"] != members:
        raise SystemExit(f"The first pull did not apply every member: {first}")

    def rate(seconds: float) -> str:
        return f"{members / seconds:,.0f}"

    reference_total = download_seconds + copy_seconds
    rows: list[list[Any]] = [
        ["file, MB", f"{file_mb:.1f}", f"{file_mb:.1f}", ""],
        [
            "first pull (all added): members/s, whole pull",
            rate(first["seconds"]),
            rate(reference_total),
            f"{reference_total / first['seconds']:.0%}",
        ],
        [
            "  apply (read file + replace) vs COPY: members/s",
            rate(first["apply_seconds"]),
            rate(copy_seconds),
            f"{copy_seconds / first['apply_seconds']:.0%}",
        ],
        [
            "  apply's phases, s: staging (COPY) / the rest (INSERT, DELETE, counts)",
            f"{first.get('stage_seconds', 0):.1f} / "
            f"{first['apply_seconds'] - first.get('stage_seconds', 0):.1f}",
            "",
            "",
        ],
        [
            "  seconds: export / download / apply",
            f"{first.get('export_request_seconds', 0) + first.get('export_wait_seconds', 0):.1f}"
            f" / {first['download_seconds']:.1f} / {first['apply_seconds']:.1f}",
            f"{download_seconds:.1f} (request to file) / {copy_seconds:.1f}",
            "",
        ],
        ["  worker CPU, s", f"{first['cpu_seconds']:.1f}", "", ""],
        ["  worker peak RSS, MB", f"{first['peak_rss_mb']:.0f}", "", ""],
        [
            "second pull (nothing changes): members/s, whole pull",
            rate(second["seconds"]),
            "",
            "",
        ],
        [
            "  apply vs COPY: members/s",
            rate(second["apply_seconds"]),
            rate(copy_seconds),
            f"{copy_seconds / second['apply_seconds']:.0%}",
        ],
        ["  worker peak RSS, MB", f"{second['peak_rss_mb']:.0f}", "", ""],
    ]
    print()
    _common.table(rows, ["figure", "cohortsync", "reference", "ratio"])
    ratio = copy_seconds / first["apply_seconds"]
    peak = max(first["peak_rss_mb"], second["peak_rss_mb"])
    seen = ", ".join(f"{n:,}" for n in sorted(counter.seen))
    atomic = counter.seen <= {0, members}
    print(
        f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'} apply at {ratio:.0%} of COPY's "
        f"members/s (target {TARGET_RATIO:.0%}); "
        f"{'PASS' if peak < _common.RSS_BOUND_MB else 'FAIL'} peak RSS {peak:.0f} MB "
        f"(bound {_common.RSS_BOUND_MB} MB); "
        f"{'PASS' if atomic else 'FAIL'} atomic: {counter.samples} counts during the first "
        f"pull saw {seen or 'nothing'}"
    )
    print(f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
