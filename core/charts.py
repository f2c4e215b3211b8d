"""The geometry of the "size over time" chart: recorded counts in, an SVG step path out.

Pure functions, no Django: the template draws what these compute.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Room around the plot for the axis labels, in SVG user units.
MARGIN_LEFT = 76
MARGIN_RIGHT = 16
MARGIN_TOP = 12
MARGIN_BOTTOM = 30


@dataclass(frozen=True)
class Tick:
    position: float
    label: str
    anchor: str = "middle"  # SVG text-anchor


@dataclass(frozen=True)
class StepChart:
    width: int
    height: int
    path: str
    left: float
    right: float
    top: float
    bottom: float
    x_ticks: list[Tick]
    y_ticks: list[Tick]

    @property
    def y_label_x(self) -> float:
        return self.left - 8

    @property
    def x_label_y(self) -> float:
        return self.bottom + 20


def _time_label(at: datetime, span: timedelta) -> str:
    if span < timedelta(days=2):
        return f"{at:%b} {at.day} {at:%H:%M}"
    return f"{at:%b} {at.day}"


def _step_path(coords: Sequence[tuple[float, float]]) -> str:
    """A step line: each count holds until the next sample.

    Samples that land on the same pixel column collapse to their low, high and last values, so
    a month of per-minute samples stays a path of a few thousand commands at most.
    """
    x0, y0 = coords[0]
    parts = [f"M{x0:.1f},{y0:.1f}"]
    column: list[float] = []
    column_x = int(x0)
    last_y = y0

    def flush() -> None:
        if not column:
            return
        ys = [min(column), max(column), column[-1]] if len(column) > 2 else column
        parts.extend(f"V{y:.1f}" for y in ys)
        column.clear()

    for x, y in coords[1:]:
        if int(x) != column_x:
            flush()
            parts.append(f"H{x:.1f}")
            column_x = int(x)
        if y != last_y:
            column.append(y)
        last_y = y
    flush()
    return "".join(parts)


def step_chart(
    points: Sequence[tuple[datetime, int]],
    *,
    end: datetime | None = None,
    width: int = 640,
    height: int = 200,
) -> StepChart | None:
    """Chart of (time, count) samples in time order; None when there are fewer than two.

    `end` (usually now) extends the last count to the right edge: the size holds until it changes.
    """
    if len(points) < 2:
        return None
    start = points[0][0]
    end = max(end or points[-1][0], points[-1][0])
    span = end - start
    seconds = span.total_seconds() or 1.0
    low = min(count for _, count in points)
    high = max(count for _, count in points)
    left, right = float(MARGIN_LEFT), float(width - MARGIN_RIGHT)
    top, bottom = float(MARGIN_TOP), float(height - MARGIN_BOTTOM)

    def x_of(at: datetime) -> float:
        return left + (at - start).total_seconds() / seconds * (right - left)

    def y_of(count: int) -> float:
        if high == low:
            return (top + bottom) / 2
        return bottom - (count - low) / (high - low) * (bottom - top)

    coords = [(x_of(at), y_of(count)) for at, count in points]
    if end > points[-1][0]:
        coords.append((right, coords[-1][1]))
    middle = start + span / 2
    return StepChart(
        width=width,
        height=height,
        path=_step_path(coords),
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        x_ticks=[
            Tick(left, _time_label(start, span), "start"),
            Tick(x_of(middle), _time_label(middle, span), "middle"),
            Tick(right, _time_label(end, span), "end"),
        ],
        y_ticks=[Tick(y_of(count), f"{count:,}", "end") for count in sorted({low, high})],
    )
