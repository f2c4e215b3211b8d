"""What needs someone's attention, for the top of the home page.

Five kinds, each answered with a set-based query whatever the number of syncs and runs: syncs
whose latest run failed, runs held by the mass-removal guard, connections whose credentials were
refused, syncs paused because of it, and syncs whose cohort has neither changed nor received
data for COHORTSYNC_STALE_COHORT_DAYS (a partner feed that stopped looks exactly like that).
The counts come from one aggregate over the syncs; each list shows the first few.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery

from cohorts.models import CsvUpload, ImportRequest
from connections.models import Connection
from syncs.models import Sync, SyncRun

SHOWN = 10  # rows listed per kind; the count says how many there are in all
FAILED_RUN = (SyncRun.Status.FAILED, SyncRun.Status.PARTIALLY_FAILED)


@dataclass(frozen=True)
class Attention:
    failed: list[Sync]  # each with `failed_run_id`, its latest finished run
    failed_count: int
    held: list[SyncRun]
    held_count: int
    connections: list[Connection]
    paused: list[Sync]
    paused_count: int
    stale: list[Sync]
    stale_count: int
    stale_days: int

    @property
    def total(self) -> int:
        return (
            self.failed_count
            + self.held_count
            + len(self.connections)
            + self.paused_count
            + self.stale_count
        )


def _stale_filter(now: datetime, days: int) -> Q:
    """Active, recurring syncs whose cohort has neither changed nor received data since the
    cut-off.

    A partner that pushes the same members every day changes nothing, yet its feed is alive: an
    applied import request (or a CSV upload) since the cut-off keeps the cohort off the list. A
    run-once sync has sent its cohort and is done; a paused one is listed elsewhere.
    """
    cutoff = now - timedelta(days=days)
    # Uncorrelated, so PostgreSQL hashes each set once instead of probing it per sync (a
    # correlated EXISTS added 20 ms to the home page at 10,000 syncs). No NULL may reach a
    # NOT IN, or it would match nothing.
    pushed = ImportRequest.objects.filter(
        cohort__isnull=False, status=ImportRequest.Status.APPLIED, created_at__gte=cutoff
    ).values("cohort_id")
    uploaded = CsvUpload.objects.filter(
        status=CsvUpload.Status.SUCCEEDED, finished_at__gte=cutoff
    ).values("cohort_id")
    quiet = Q(status=Sync.Status.ACTIVE, cohort__updated_at__lt=cutoff)
    fed = Q(cohort_id__in=pushed) | Q(cohort_id__in=uploaded)
    return quiet & ~Q(cadence__kind="once") & ~fed


def find_attention(*, now: datetime) -> Attention:
    """Everything that needs attention now, in seven queries however much there is."""
    days = settings.COHORTSYNC_STALE_COHORT_DAYS
    failed_q = Q(last_run_status__in=FAILED_RUN)
    paused_q = Q(status=Sync.Status.NEEDS_ATTENTION)
    stale_q = _stale_filter(now, days)
    counts = Sync.objects.aggregate(
        failed=Count("id", filter=failed_q),
        paused=Count("id", filter=paused_q),
        stale=Count("id", filter=stale_q),
    )
    latest_finished = (
        SyncRun.objects.filter(sync=OuterRef("pk"))
        .exclude(status__in=SyncRun.ACTIVE)
        .order_by("-queued_at", "-id")
        .values("pk")[:1]
    )
    failed = (
        Sync.objects.filter(failed_q)
        .annotate(failed_run_id=Subquery(latest_finished))
        .order_by("-last_run_at", "-id")[:SHOWN]
    )
    held = SyncRun.objects.filter(status=SyncRun.Status.HELD)
    paused = Sync.objects.filter(paused_q).select_related("connection").order_by("name", "id")
    stale = Sync.objects.filter(stale_q).select_related("cohort").order_by("cohort__updated_at")
    return Attention(
        failed=list(failed),
        failed_count=counts["failed"],
        held=list(held.select_related("sync").order_by("-queued_at", "-id")[:SHOWN]),
        held_count=held.count(),
        connections=list(Connection.objects.filter(state=Connection.State.NEEDS_ATTENTION)),
        paused=list(paused[:SHOWN]),
        paused_count=counts["paused"],
        stale=list(stale[:SHOWN]),
        stale_count=counts["stale"],
        stale_days=days,
    )
