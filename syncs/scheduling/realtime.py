"""Real-time syncs: a committed cohort change starts a run of each real-time sync of the cohort.

Coalesced: at most one queued run per sync; a change during a run asks for one follow-up run,
started when the running one ends.
"""

from typing import Any

from syncs.models import Sync, SyncRun
from syncs.services import start_run


def realtime_syncs(cohort_id: int) -> list[Sync]:
    return list(
        Sync.objects.filter(
            cohort_id=cohort_id, status=Sync.Status.ACTIVE, cadence__kind="realtime"
        )
    )


def on_cohort_changed(sender: Any, cohort_id: int, **kwargs: Any) -> None:
    for sync in realtime_syncs(cohort_id):
        run, created = start_run(sync=sync, trigger=SyncRun.Trigger.REALTIME, actor=None)
        if not created and run.status == SyncRun.Status.RUNNING:
            Sync.objects.filter(pk=sync.pk).update(follow_up_requested=True)


def on_run_finished(sender: Any, run_id: int, **kwargs: Any) -> None:
    sync_id = SyncRun.objects.filter(pk=run_id).values_list("sync_id", flat=True).first()
    if sync_id is not None:
        start_follow_up(sync_id)


def start_follow_up(sync_id: int) -> None:
    """When a run ends: start the run a change asked for while it was going."""
    if Sync.objects.filter(pk=sync_id, follow_up_requested=True).update(follow_up_requested=False):
        sync = Sync.objects.get(pk=sync_id)
        if sync.status == Sync.Status.ACTIVE:
            start_run(sync=sync, trigger=SyncRun.Trigger.REALTIME, actor=None)
