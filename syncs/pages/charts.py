"""The geometry of the dashboard's bar charts: members added and removed per day on the home
page, and adds, removes and failures per run on a sync's page.

Pure functions, no Django, like core.charts: the template draws what these compute. Each bar
carries its own text (drawn as an SVG <title>), and the chart a one-line summary, so a screen
reader gets the numbers as well as the picture.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from core.charts import MARGIN_BOTTOM, MARGIN_RIGHT, MARGIN_TOP, Tick

MARGIN_LEFT = 56  # bar charts label counts, not dates: narrower than the step chart's
GAP = 0.2  # share of each category's slot left empty between categories


@dataclass(frozen=True)
class Series:
    name: str  # "added", also the CSS class of its bars
    label: str  # "Added", for the legend and the bar titles
    values: Sequence[int]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    legend: list[Series]
    summary: str

    @property
    def y_label_x(self) -> float:
        return self.left - 8

    @property
    def x_label_y(self) -> float:
        return self.bottom + 20


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    summary: str,
    width: int = 640,
    height: int = 180,
    tick_every: int = 1,
) -> BarChart | None:
    """Grouped bars: one slot per label, one bar per series in it; None when every value is 0.

    Every x label is drawn when `tick_every` is 1; a larger step keeps 30 dates readable.
    """
    if not labels or not any(value for s in series for value in s.values):
        return None
    high = max(value for s in series for value in s.values)
    left, right = float(MARGIN_LEFT), float(width - MARGIN_RIGHT)
    top, bottom = float(MARGIN_TOP), float(height - MARGIN_BOTTOM)
    slot = (right - left) / len(labels)
    bar_width = slot * (1 - GAP) / len(series)
    bars = []
    for index, label in enumerate(labels):
        start = left + index * slot + slot * GAP / 2
        for position, s in enumerate(series):
            value = s.values[index]
            if not value:
                continue  # nothing to draw; the title of an empty bar would be unreachable
            bar_height = value / high * (bottom - top)
            bars.append(
                Bar(
                    x=round(start + position * bar_width, 1),
                    y=round(bottom - bar_height, 1),
                    width=round(bar_width, 1),
                    height=round(bar_height, 1),
                    css=s.name,
                    title=f"{label}: {value:,} {s.label.lower()}",
                )
            )
    x_ticks = [
        _x_tick(index, labels[index], len(labels), left, slot)
        for index in _tick_indexes(len(labels), tick_every)
    ]
    return BarChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=[Tick(bottom, "0", "end"), Tick(top, f"{high:,}", "end")],
        legend=list(series),
        summary=summary,
    )


def _tick_indexes(count: int, every: int) -> list[int]:
    """Every `every`-th slot and the last one, dropping a regular tick that would crowd it."""
    indexes = list(range(0, count, every))
    if indexes[-1] != count - 1:
        if count - 1 - indexes[-1] < every / 2 and len(indexes) > 1:
            indexes.pop()
        indexes.append(count - 1)
    return indexes


def _x_tick(index: int, label: str, count: int, left: float, slot: float) -> Tick:
    """The first label starts at its slot and the last ends at its own, so neither is clipped."""
    if count > 1 and index == 0:
        return Tick(round(left, 1), label, "start")
    if count > 1 and index == count - 1:
        return Tick(round(left + count * slot, 1), label, "end")
    return Tick(round(left + index * slot + slot / 2, 1), label)


def daily_changes_chart(
    totals: dict[date, tuple[int, int]], *, today: date, days: int = 30
) -> BarChart | None:
    """Members added and removed per day, the last `days` days up to today, gaps as zeros."""
    span = [today - timedelta(days=days - 1 - n) for n in range(days)]
    added = [totals.get(day, (0, 0))[0] for day in span]
    removed = [totals.get(day, (0, 0))[1] for day in span]
    summary = (
        f"Members added and removed per day, {_day(span[0])} to {_day(span[-1])}: "
        f"{sum(added):,} added, {sum(removed):,} removed."
    )
    return bar_chart(
        [_day(day) for day in span],
        [Series("added", "Added", added), Series("removed", "Removed", removed)],
        summary=summary,
        tick_every=7,
    )


@dataclass(frozen=True)
class RunCounts:
    pk: int
    added: int
    removed: int
    failed: int


def run_changes_chart(runs: Sequence[RunCounts]) -> BarChart | None:
    """Adds, removes and failures of each run, oldest first (pass the runs in that order)."""
    labels = [f"Run {run.pk}" for run in runs]
    series = [
        Series("added", "Added", [run.added for run in runs]),
        Series("removed", "Removed", [run.removed for run in runs]),
        Series("failed", "Failed", [run.failed for run in runs]),
    ]
    summary = (
        f"Adds, removes and failures of the last {len(runs)} finished "
        f"run{'s' if len(runs) != 1 else ''}: "
        + ", ".join(f"{sum(s.values):,} {s.label.lower()}" for s in series)
        + "."
    )
    return bar_chart(labels, series, summary=summary, tick_every=max(1, len(runs) // 4 or 1))


def _day(day: date) -> str:
    return f"{day:%b} {day.day}"
