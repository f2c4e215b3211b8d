"""Delta sync: a cohort already in the destination changes by 1 % and the sync sends the change.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cohortsync_bench \\
    REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/delta_sync.py [--members 100000 1000000] [--churn 0.01]

For each size: a cohort of N members whose ledger says all of them are in the destination (as
after a full sync, tables analysed as autovacuum would have), then half the churn leaves the
cohort and as many new members join. One run of the sync (in a worker process of its own,
against the simulated Braze in another) computes the diff and sends it. Reported: the diff time
(the plan's counts plus the keyset pages: cohort minus ledger, ledger minus cohort), the send
time (everything else: partner calls and checkpoints) and their total, against the target of
10 s for 1,000,000 members on PostgreSQL. The reference is the same diff as one plain SQL count
each way, without paging: what the database needs to find the changes at all.
"""

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

TARGET_SECONDS = 10.0


def mark_synced(sync: Any) -> None:
    """The ledger of a sync that has sent the whole cohort, written by PostgreSQL itself."""
    from django.db import connection

    from cohorts.models import CohortMember
    from syncs.models import SyncedMember

    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SyncedMember._meta.db_table} "  # noqa: S608
            "(sync_id, id_type, alias_label, value, dest_type, dest_value, dest_label, added_at) "
            "SELECT %s, id_type, alias_label, value, 'external_id', value, '', now() "
            f"FROM {CohortMember._meta.db_table} WHERE cohort_id = %s",
            [sync.pk, sync.cohort_id],
        )


def churn(cohort: Any, members: int, fraction: float) -> tuple[int, int]:
    """Every k-th member leaves and as many new ones join; returns (joined, left)."""
    from django.db import connection

    from cohorts.models import CohortMember

    changes = int(members * fraction)
    leaving = changes // 2
    step = max(1, members // max(1, leaving))
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {CohortMember._meta.db_table} WHERE id IN ("  # noqa: S608
            f"SELECT id FROM {CohortMember._meta.db_table} WHERE cohort_id = %s "
            "ORDER BY id LIMIT %s) AND (id %% %s) = 0",
            [cohort.pk, members, step],
        )
        left = cursor.rowcount
    _common.add_members(cohort.pk, members, members + changes - left)
    return changes - left, left


def analyse() -> None:
    from django.db import connection

    from cohorts.models import CohortMember
    from syncs.models import SyncedMember

    with connection.cursor() as cursor:
        for model in (CohortMember, SyncedMember):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def reference_counts(sync: Any) -> tuple[float, int, int]:
    from syncs.engine import diff

    started = time.perf_counter()
    adds = diff.members_to_add(sync).count()
    removes = diff.ledger_to_remove(sync).count()
    return time.perf_counter() - started, adds, removes


def bench_size(members: int, fraction: float, url: str, connection: Any) -> list[list[Any]]:
    tag = uuid.uuid4().hex[:6]
    started = time.perf_counter()
    cohort = _common.make_cohort(f"bench delta {members} {tag}", members)
    sync = _common.make_sync(cohort, connection)
    try:
        mark_synced(sync)
        joined, left = churn(cohort, members, fraction)
        analyse()
        print(
            f"{members:,} members set up in {time.perf_counter() - started:.0f} s: "
            f"{joined:,} joined, {left:,} left",
            flush=True,
        )
        reference_seconds, adds, removes = reference_counts(sync)
        assert (adds, removes) == (joined, left), (adds, removes, joined, left)
        figures = _common.run_in_worker(_common.queue_run(sync))
    finally:
        _common.drop_cohort(cohort)
    if figures["status"] != "succeeded" or (figures["added"], figures["removed"]) != (
        joined,
        left,
    ):
        raise SystemExit(f"The run did not send the change: {figures}")
    diff_seconds = figures.get("plan_seconds", 0.0) + figures.get("pages_seconds", 0.0)
    send_seconds = figures["seconds"] - diff_seconds
    total = figures["seconds"]
    verdict = "PASS" if total < TARGET_SECONDS else "FAIL"
    print(f"{members:,}: {verdict} diff + send {total:.1f} s (target {TARGET_SECONDS:.0f} s)")
    label = f"{members // 1000:,}k"
    return [
        [f"{label}: diff, s (plan + pages)", f"{diff_seconds:.1f}", f"{reference_seconds:.1f}"],
        [
            f"{label}:   plan / pages, s",
            f"{figures.get('plan_seconds', 0):.1f} / {figures.get('pages_seconds', 0):.1f}",
            "",
        ],
        [f"{label}: send, s ({figures['requests']:,} requests)", f"{send_seconds:.1f}", ""],
        [f"{label}: diff + send, s", f"{total:.1f}", ""],
        [f"{label}: worker peak RSS, MB", f"{figures['peak_rss_mb']:.0f}", ""],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--churn", type=float, default=0.01)
    args = parser.parse_args()
    _common.setup_django()
    print(f"churn {args.churn:.1%}; {_common.machine()}", flush=True)
    rows = []
    with _common.simulator() as url:
        connection = _common.make_connection("braze", url, f"bench delta {uuid.uuid4().hex[:6]}")
        try:
            for members in args.members:
                rows += bench_size(members, args.churn, url, connection)
        finally:
            connection.delete()
    print()
    _common.table(rows, ["figure", "cohortsync", "reference: 2 SQL counts"])


if __name__ == "__main__":
    main()
