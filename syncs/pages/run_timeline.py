"""A run's timeline for its page: its SyncRunEvents as display rows, at times since it was queued.

A run of a million members writes some 13,000 batch events, and a throttled one thousands of
waits, so nothing here loads events one by one: consecutive batches are summed in SQL into one
row ("Batches 3-120: +8,850 added, 12 failed, 41 s"), the first retries and waits are listed
and the rest summed into one row, and the timeline costs at most four queries however long the
run.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Case, Count, FloatField, IntegerField, Min, Q, Sum, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from syncs.models import SyncRun, SyncRunEvent
from syncs.pages.progress import format_duration

Kind = SyncRunEvent.Kind
WAITS = (Kind.RETRY, Kind.THROTTLED)
# Steps other than batches and waits: a handful per run, at most a few per interruption.
STEPS_SHOWN = 100
WAITS_SHOWN = 20
BATCH_COUNTS = ("added", "removed", "failed", "skipped")


@dataclass
class TimelineRow:
    # The first event's id: rows from the four queries are put back in the order written.
    position: int
    at: datetime
    since_queued: str
    kind: str
    title: str
    text: str


def _since(origin: datetime, at: datetime) -> str:
    return f"+{format_duration(max(0.0, (at - origin).total_seconds()))}"


def _number(details: dict[str, Any], name: str) -> float:
    value = details.get(name)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _batch_text(counts: dict[str, Any]) -> str:
    parts = []
    if _number(counts, "added"):
        parts.append(f"+{int(_number(counts, 'added')):,} added")
    if _number(counts, "removed"):
        parts.append(f"-{int(_number(counts, 'removed')):,} removed")
    for name in ("failed", "skipped"):
        if _number(counts, name):
            parts.append(f"{int(_number(counts, name)):,} {name}")
    parts.append(format_duration(_number(counts, "ms") / 1000))
    return ", ".join(parts)


def _int_detail(name: str) -> Coalesce:
    return Coalesce(Sum(Cast(KT(f"details__{name}"), IntegerField())), Value(0))


def _batch_groups(run: SyncRun, boundaries: list[int]) -> list[dict[str, Any]]:
    """One aggregate row per stretch of batches between two listed steps (one query)."""
    # Stretch n holds the batches after the n-th listed step and before the next one.
    stretch = Case(
        *(When(id__lt=boundary, then=Value(n)) for n, boundary in enumerate(boundaries)),
        default=Value(len(boundaries)),
        output_field=IntegerField(),
    )
    rows = (
        SyncRunEvent.objects.filter(run=run, kind=Kind.BATCH)
        .annotate(stretch=stretch)
        .values("stretch")
        .annotate(
            first_id=Min("id"),
            first_at=Min("at"),
            # A group commit's line holds several batches; older lines hold one.
            batches=Sum(Coalesce(Cast(KT("details__batches"), IntegerField()), Value(1))),
            ms=_int_detail("ms"),
            **{name: _int_detail(name) for name in BATCH_COUNTS},
        )
        .order_by("stretch")
    )
    # Grouped by a constant (no listed steps), an empty run still yields one row of nulls.
    return [row for row in rows if row["batches"]]


def _wait_text(count: int, retries: int, seconds: float) -> str:
    throttled = count - retries
    parts = []
    if retries:
        parts.append(f"{retries:,} retr{'y' if retries == 1 else 'ies'}")
    if throttled:
        parts.append(f"{throttled:,} throttled wait{'s' if throttled != 1 else ''}")
    return f"{' and '.join(parts)}, {format_duration(seconds)} waited in all"


def run_timeline(run: SyncRun) -> list[TimelineRow]:
    """The run's steps, oldest first, times given since the run was queued."""
    events = SyncRunEvent.objects.filter(run=run).order_by("id")
    columns = ("id", "at", "kind", "message")
    steps = list(events.exclude(kind__in=(Kind.BATCH, *WAITS)).values_list(*columns)[:STEPS_SHOWN])
    waits = list(events.filter(kind__in=WAITS).values_list(*columns)[: WAITS_SHOWN + 1])
    listed = steps + waits[:WAITS_SHOWN]
    labels = dict(Kind.choices)
    origin = run.queued_at
    rows = [
        TimelineRow(
            position=event_id,
            at=at,
            since_queued=_since(origin, at),
            kind=kind,
            title=labels.get(kind, kind),
            text=message,
        )
        for event_id, at, kind, message in listed
    ]
    if len(waits) > WAITS_SHOWN:
        rows.append(_more_waits_row(run, first_unlisted=waits[WAITS_SHOWN], origin=origin))
    boundaries = sorted(row[0] for row in listed)
    batches_before = 0
    for group in _batch_groups(run, boundaries):
        first, last = batches_before + 1, batches_before + group["batches"]
        batches_before = last
        title = f"Batch {first:,}" if first == last else f"Batches {first:,}-{last:,}"
        at = group["first_at"]
        rows.append(
            TimelineRow(
                group["first_id"], at, _since(origin, at), Kind.BATCH, title, _batch_text(group)
            )
        )
    return sorted(rows, key=lambda row: row.position)


def _more_waits_row(
    run: SyncRun, *, first_unlisted: tuple[Any, ...], origin: datetime
) -> TimelineRow:
    """The retries and waits past the first WAITS_SHOWN, summed into one row where they start."""
    event_id, at = first_unlisted[0], first_unlisted[1]
    totals = SyncRunEvent.objects.filter(run=run, kind__in=WAITS, id__gte=event_id).aggregate(
        count=Count("id"),
        retries=Count("id", filter=Q(kind=Kind.RETRY)),
        seconds=Coalesce(Sum(Cast(KT("details__seconds"), FloatField())), Value(0.0)),
    )
    return TimelineRow(
        event_id,
        at,
        _since(origin, at),
        "waits",
        f"{totals['count']:,} more retries and waits",
        _wait_text(totals["count"], totals["retries"], totals["seconds"]),
    )
