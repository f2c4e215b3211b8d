"""Dispatcher tick: `dispatch_due_syncs` with 10,000 active syncs.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cohortsync_bench \\
    REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/dispatcher_tick.py [--syncs 10000]

Makes N active hourly syncs on one cohort and connection, then times two ticks:

- typical: the syncs' minutes are spread over the hour, so one tick finds about N / 60 due;
- worst: every sync is due at once (all at minute 0, or the dispatcher was down); a tick takes
  at most DISPATCH_BATCH of them, and the next ticks the rest.

Each tick claims its slots, creates the runs and enqueues their jobs on the Redis in REDIS_URL
(emptied afterwards: no worker should listen there). The reference is the claim alone as one
set-based UPDATE ... RETURNING on the same number of rows: what the database needs at least.
Target: a tick under 1 s.
"""

import argparse
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

TARGET_SECONDS = 1.0


def make_syncs(count: int, tag: str) -> tuple[Any, Any]:
    from django.utils import timezone

    from syncs.models import Sync

    cohort = _common.make_cohort(f"bench dispatch {tag}", 10)
    connection = _common.make_connection("braze", "http://127.0.0.1:9", f"bench dispatch {tag}")
    now = timezone.now()
    Sync.objects.bulk_create(
        [
            Sync(
                name=f"bench {tag} {n}",
                cohort=cohort,
                connection=connection,
                identifier_mapping=["external_id"],
                cadence={"kind": "hourly", "minute": n % 60},
                next_run_at=now + timedelta(days=1),
            )
            for n in range(count)
        ],
        batch_size=2000,
    )
    return cohort, connection


def make_due(cohort: Any, count: int, spread: bool) -> Any:
    """Puts `count` syncs (or every 60th with `spread`) due a second ago; returns now."""
    from django.db.models import F, Value
    from django.db.models.functions import Mod
    from django.utils import timezone

    from syncs.models import Sync, SyncRun

    now = timezone.now()
    syncs = Sync.objects.filter(cohort=cohort)
    SyncRun.objects.filter(sync__cohort=cohort).delete()
    syncs.update(next_run_at=now + timedelta(days=1))
    due = syncs.annotate(slot=Mod(F("id"), Value(60))).filter(slot=0) if spread else syncs
    due.update(next_run_at=now - timedelta(seconds=1))
    return now


def reference_claim(cohort: Any, limit: int) -> tuple[float, int]:
    from django.db import connection, transaction

    from syncs.models import Sync

    table = Sync._meta.db_table
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET next_run_at = next_run_at + interval '1 hour' "  # noqa: S608
            f"WHERE id IN (SELECT id FROM {table} WHERE cohort_id = %s AND status = 'active' "
            "AND next_run_at <= now() ORDER BY next_run_at LIMIT %s) RETURNING id",
            [cohort.pk, limit],
        )
        claimed = len(cursor.fetchall())
        transaction.set_rollback(True)  # only timed: the rows stay due for the real tick
    return time.perf_counter() - started, claimed


def tick(now: Any) -> tuple[float, int]:
    from syncs.scheduling.dispatch import dispatch_due_syncs

    started = time.perf_counter()
    count = dispatch_due_syncs(now=now)
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--syncs", type=int, default=10_000)
    args = parser.parse_args()
    _common.setup_django()
    import django_rq

    from syncs.models import SyncRun, SyncRunEvent
    from syncs.scheduling.dispatch import DISPATCH_BATCH

    print(f"{args.syncs:,} active hourly syncs; {_common.machine()}", flush=True)
    tag = uuid.uuid4().hex[:6]
    cohort, connection = make_syncs(args.syncs, tag)
    queue = django_rq.get_queue("runs")
    rows: list[list[Any]] = []
    try:
        for name, spread in (("typical (due this minute)", True), ("worst (all due)", False)):
            now = make_due(cohort, args.syncs, spread)
            reference_seconds, claimed = reference_claim(cohort, DISPATCH_BATCH)
            seconds, started = tick(now)
            assert started == claimed, (started, claimed)
            rows.append(
                [f"{name}: tick, s ({started:,} runs started)", f"{seconds:.2f}",
                 f"{reference_seconds:.3f}"]
            )  # fmt: skip
            if not spread:
                total, ticks = seconds, 1
                while True:
                    more_seconds, more = tick(now)
                    if not more:
                        break
                    total, ticks = total + more_seconds, ticks + 1
                rows.append([f"{name}: {ticks} ticks to start all, s", f"{total:.2f}", ""])
            verdict = "PASS" if seconds < TARGET_SECONDS else "FAIL"
            print(f"{name}: {verdict} one tick {seconds:.2f} s (target {TARGET_SECONDS:.0f} s)")
            queue.empty()
    finally:
        queue.empty()
        SyncRunEvent.objects.filter(run__sync__cohort=cohort).delete()
        SyncRun.objects.filter(sync__cohort=cohort).delete()
        _common.drop_cohort(cohort)
        connection.delete()
    print()
    _common.table(rows, ["figure", "cohortsync", "reference: one UPDATE"])


if __name__ == "__main__":
    main()
