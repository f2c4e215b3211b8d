"""Write a run's timeline: one SyncRunEvent per step. Callers inside a checkpoint's transaction
get the event in the same commit as the counters it describes."""

from typing import Any

from syncs.models import SyncRunEvent

Kind = SyncRunEvent.Kind


def record_event(run_id: int, kind: str, message: str = "", **details: Any) -> None:
    SyncRunEvent.objects.create(run_id=run_id, kind=kind, message=message[:500], details=details)
