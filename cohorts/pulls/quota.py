"""Amplitude's download quota (docs/partners/amplitude.md §5): about 500 export requests a month
per project. What the cadences chosen will use is projected, and a cadence that would take the
connection past the quota is refused before anything is saved."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from cohorts.models import AmplitudeDownloadRequest, AmplitudePull

Cadence = AmplitudePull.Cadence
# Downloads a month, per cadence: a 30-day month (hourly 24 x 30).
MONTHLY_DOWNLOADS = {Cadence.HOURLY: 24 * 30, Cadence.DAILY: 30, Cadence.ONCE: 1}


@dataclass(frozen=True)
class Usage:
    used: int  # export requests made this calendar month (UTC), from our own request log
    projected: int  # what the connection's pulls will request in a month at their cadences
    quota: int


def monthly_quota() -> int:
    return int(settings.COHORTSYNC_AMPLITUDE_MONTHLY_DOWNLOADS)


def month_start(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def projected(cadences: Iterable[str]) -> int:
    return sum(MONTHLY_DOWNLOADS[Cadence(cadence)] for cadence in cadences)


def usage(connection_id: int, *, now: datetime | None = None) -> Usage:
    used = AmplitudeDownloadRequest.objects.filter(
        connection_id=connection_id, requested_at__gte=month_start(now)
    ).count()
    cadences = AmplitudePull.objects.filter(connection_id=connection_id).values_list(
        "cadence", flat=True
    )
    return Usage(used=used, projected=projected(cadences), quota=monthly_quota())


def check_cadence(connection_id: int, cadence: str, *, replacing: int | None = None) -> None:
    """Refuse a cadence that would take the connection's projected downloads past the quota.
    `replacing`: the pull whose cadence changes, left out of the sum."""
    others = AmplitudePull.objects.filter(connection_id=connection_id)
    if replacing is not None:
        others = others.exclude(pk=replacing)
    current = projected(others.values_list("cadence", flat=True))
    needed = MONTHLY_DOWNLOADS[Cadence(cadence)]
    quota = monthly_quota()
    if current + needed > quota:
        label = Cadence(cadence).label.lower()
        raise ValidationError(
            f"A {label} download needs about {needed:,} downloads a month; with this source's "
            f"other pulls ({current:,} a month) that is past Amplitude's quota of {quota:,} a "
            "month. Choose a slower cadence, or stop another pull."
        )
