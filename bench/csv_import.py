"""CSV import benchmark: a 1,000,000-row file with extra identifiers, imported by the job.

Prints wall time, rows/s and the worker's peak RSS next to the parsing floor (a plain
`csv.reader` counting the rows of the same file), and PASS/FAIL against the memory bound: the
issue asks that a million-row file never be held in memory, and the target for workers
(docs/architecture.md §7) is a peak RSS under 300 MB.

    DEBUG=true DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cohortsync_bench \\
        .venv/bin/python bench/csv_import.py [--rows 1000000] [--mode replace]

Without DATABASE_URL it uses the SQLite database in var/. It migrates the database, works in a
cohort of its own and deletes it afterwards; the file lives in a temporary directory.
"""

import argparse
import csv
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MEMORY_BOUND_MB = 300


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def generate(path: Path, rows: int) -> None:
    """Written line by line: the generator holds one row at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "braze_id", "idfa", "idfv", "gaid", "oaid", "amplitude_id"])
        for n in range(rows):
            writer.writerow(
                [
                    f"user-{n:08}",
                    f"{n:024x}",
                    f"{n:08X}-AAAA-4BBB-8CCC-{n:012X}" if n % 2 else "",
                    f"{n:08X}-DDDD-4EEE-8FFF-{n:012X}" if n % 2 else "",
                    f"{n:08x}-1111-4222-8333-{n:012x}" if not n % 2 else "",
                    "",
                    str(10_000_000_000 + n) if n % 3 == 0 else "",
                ]
            )


def reference_parse(path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as handle:
        count = sum(1 for _ in csv.reader(handle)) - 1
    return count, time.perf_counter() - started


def own_parse(path: Path) -> float:
    """cohortsync's parser and validation alone, without the database."""
    from django.core.files import File

    from cohorts.csv_rows import Lines, parse_header, parse_row, read_records

    started = time.perf_counter()
    with path.open("rb") as handle:
        records = read_records(Lines(File(handle)))
        header = parse_header(records)
        for record in records:
            parse_row(header, record)
    return time.perf_counter() - started


def timed(phases: dict[str, float], name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            phases[name] = time.perf_counter() - started

    return wrapper


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=["replace", "add"], default="replace")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cohortsync-bench-csv-"))
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cohortsync.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from cohorts import csv_import
    from cohorts.models import Cohort, CohortMember, CsvUpload

    call_command("migrate", verbosity=0)
    source = workdir / "media" / "uploads" / "bench.csv"
    try:
        started = time.perf_counter()
        generate(source, options.rows)
        size = source.stat().st_size
        print(
            f"generated {options.rows:,} rows ({size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - started:.1f} s"
        )
        parsed, parse_seconds = reference_parse(source)
        assert parsed == options.rows
        own_parse_seconds = own_parse(source)

        cohort = Cohort.objects.create(name=f"bench csv {time.time():.0f}", source="csv")
        upload = CsvUpload.objects.create(
            cohort=cohort,
            mode=options.mode,
            file_name="bench.csv",
            stored_path="uploads/bench.csv",
            size_bytes=size,
        )
        phases: dict[str, float] = {}
        csv_import._stage = timed(phases, "stage", csv_import._stage)
        csv_import._apply = timed(phases, "apply", csv_import._apply)
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        result = csv_import.import_csv_upload(upload.pk)
        wall = time.perf_counter() - started
        rss_after = peak_rss_mb()
        assert result is not None and result.status == "succeeded", result and result.error
        members = CohortMember.objects.filter(cohort=cohort).count()
        assert result.added == members == options.rows, (result.added, members)

        print()
        print(
            f"rows {options.rows:,}, mode {options.mode}, chunk {csv_import.CHUNK_ROWS:,} rows; "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{connection.vendor} ({connection.settings_dict['NAME']})"
        )
        print()
        print(f"{'figure':<36}{'cohortsync':>14}{'reference':>14}{'ratio':>9}")
        print(
            f"{'wall time, s (import vs parse only)':<36}{wall:>14.1f}{parse_seconds:>14.1f}"
            f"{wall / parse_seconds:>8.1f}x"
        )
        print(
            f"{'rows/s':<36}{options.rows / wall:>14,.0f}{options.rows / parse_seconds:>14,.0f}"
            f"{parse_seconds / wall:>8.1%}"
        )
        print(f"{'  parse + validate only, s':<36}{own_parse_seconds:>14.1f}")
        print(f"{'  stage phase, s':<36}{phases['stage']:>14.1f}")
        print(f"{'  apply phase (one transaction), s':<36}{phases['apply']:>14.1f}")
        print(f"{'peak RSS before import, MB':<36}{rss_before:>14.0f}")
        print(f"{'peak RSS after import, MB':<36}{rss_after:>14.0f}{MEMORY_BOUND_MB:>14}")
        print(f"{'RSS growth during import, MB':<36}{rss_after - rss_before:>14.0f}")
        print()
        verdict = "PASS" if rss_after < MEMORY_BOUND_MB else "FAIL"
        print(
            f"{verdict}: worker peak RSS {rss_after:.0f} MB against the bound of "
            f"{MEMORY_BOUND_MB} MB for a {size / 1e6:.0f} MB file"
        )
        with connection.cursor() as cursor:
            # Deleting through the ORM would load a million members to cascade.
            cursor.execute(
                f"DELETE FROM {CohortMember._meta.db_table} WHERE cohort_id = %s",  # noqa: S608
                [cohort.pk],
            )
        cohort.delete()
        return 0 if verdict == "PASS" else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
