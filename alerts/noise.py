"""Noise control: a sync or connection alerts when its state changes, never once per failed run.

ok → failing and ok → held are the first failure; failing or held → ok is the recovery; failing
→ held and held → failing are a new kind of trouble. The same state again sends nothing.
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from alerts.models import AlertState

State = AlertState.State


@dataclass(frozen=True)
class StateChange:
    previous: str
    since: datetime  # when the previous state began
    current: str

    @property
    def is_recovery(self) -> bool:
        return self.current == State.OK


def record_state(subject_type: str, subject_id: int, observed: str) -> StateChange | None:
    """Remember what was observed of the subject; the change, or None when nothing changed."""
    row, _ = AlertState.objects.get_or_create(subject_type=subject_type, subject_id=subject_id)
    if row.state == observed:
        return None
    # Compare-and-set: of two workers that observe the same change, only one alerts.
    moved = AlertState.objects.filter(pk=row.pk, state=row.state).update(
        state=observed, since=timezone.now()
    )
    if not moved:
        return None
    return StateChange(previous=row.state, since=row.since, current=observed)
