"""How far a sync run has got, how fast it goes and how long it has left. Pure arithmetic over
the run's counters and a clock the caller passes, so it is tested without a database."""

import math
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RunProgress:
    processed: int
    planned: int
    # None while there is no total to measure against: the bar is drawn indeterminate.
    percent: int | None
    members_per_second: float | None
    seconds_left: float | None

    @property
    def time_left(self) -> str:
        return format_duration(self.seconds_left) if self.seconds_left is not None else ""


def estimate_progress(
    *,
    processed: int,
    planned: int,
    started_at: datetime | None,
    now: datetime,
    finished: bool,
) -> RunProgress:
    """Progress of a run; the rate and time left only while it is running and has moved."""
    if planned <= 0:
        # A run that ends with nothing planned had nothing to do: that is all of it.
        return RunProgress(processed, planned, 100 if finished else None, None, None)
    percent = min(100, math.floor(processed * 100 / planned))
    rate: float | None = None
    left: float | None = None
    if not finished and started_at is not None and processed > 0:
        elapsed = (now - started_at).total_seconds()
        if elapsed > 0:
            rate = processed / elapsed
            left = max(0, planned - processed) / rate
    return RunProgress(processed, planned, percent, rate, left)


def format_duration(seconds: float) -> str:
    """Short human text: "0.4 s", "42 s", "3 min 5 s", "2 h 10 min"."""
    if seconds < 10:
        return f"{max(seconds, 0):.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def duration_between(start: datetime | None, end: datetime | None) -> str:
    """A run's duration as text, or "" when it has not started or not finished."""
    if start is None or end is None:
        return ""
    return format_duration((end - start).total_seconds())
