"""Sync cadences: parse and store them, describe them, and compute when a sync is next due.

Pure functions over the standard library: no database, no I/O, no Django. The dispatcher stores
`next_run_at` on the Sync row and calls `advance_after_missed` once it has claimed a slot.

Stored form (a JSONField):
    {"kind": "once"} | {"kind": "realtime"}
    {"kind": "hourly"} or {"kind": "hourly", "minute": 17}     minute past the hour, in UTC
    {"kind": "daily", "time_of_day": "09:00", "timezone": "Europe/Paris"}
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, cast
from zoneinfo import ZoneInfo, available_timezones

Kind = Literal["once", "hourly", "daily", "realtime"]
KINDS: tuple[Kind, ...] = ("once", "hourly", "daily", "realtime")

# The fields each kind may carry besides "kind"; anything else is refused, not ignored.
_FIELDS: dict[str, frozenset[str]] = {
    "once": frozenset(),
    "realtime": frozenset(),
    "hourly": frozenset({"minute"}),
    "daily": frozenset({"time_of_day", "timezone"}),
}
# ASCII digits only: \d would also accept other scripts' digits, which int() then converts.
_HH_MM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class CadenceError(ValueError):
    """A cadence that cannot be stored or scheduled; the message says what is wrong."""


@dataclass(frozen=True)
class Cadence:
    """How often a sync runs. Construction validates, so an invalid Cadence cannot exist.

    Hourly syncs with no `minute` are *spread*: each runs at `spread_key % 60` minutes past
    the hour, where the caller passes a stable per-sync number (the sync id). Otherwise
    10,000 hourly syncs would all fall due at :00 and the dispatcher would enqueue them in one
    burst against the partners' rate limits. Hourly minutes are UTC minutes; only daily
    cadences have a time zone.
    """

    kind: Kind
    time_of_day: time | None = None
    timezone: str = "UTC"
    minute: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise _unknown_kind(self.kind)
        if self.kind != "daily" and (self.time_of_day is not None or self.timezone != "UTC"):
            raise CadenceError(f"a {self.kind} cadence takes no time of day or time zone")
        if self.kind != "hourly" and self.minute is not None:
            raise CadenceError(f"a {self.kind} cadence takes no minute")
        if self.kind == "hourly" and self.minute is not None:
            # bool is an int subclass, and True would silently mean :01.
            if not isinstance(self.minute, int) or isinstance(self.minute, bool):
                raise CadenceError(f"minute {_show(self.minute)} is not a whole number 0 to 59")
            if not 0 <= self.minute <= 59:
                raise CadenceError(f"minute {self.minute} is out of range; use 0 to 59")
        if self.kind == "daily":
            if self.time_of_day is None:
                raise CadenceError("a daily cadence needs a time of day (HH:MM)")
            t = self.time_of_day
            if not isinstance(t, time) or t.tzinfo is not None or t.second or t.microsecond:
                raise CadenceError(f"time of day {_show(t)} is not a whole minute (HH:MM)")
            _zone(self.timezone)

    @classmethod
    def from_dict(cls, data: object) -> Cadence:
        """Build a Cadence from its stored or submitted form; raises CadenceError only."""
        if not isinstance(data, dict):
            raise CadenceError("a cadence must be an object with a 'kind'")
        kind = data.get("kind")
        if kind is None:
            raise CadenceError("a cadence needs a 'kind': once, hourly, daily or realtime")
        if not isinstance(kind, str) or kind not in _FIELDS:
            raise _unknown_kind(kind)
        extra = set(data) - _FIELDS[kind] - {"kind"}
        if extra:
            names = ", ".join(sorted(_show(name) for name in extra))
            raise CadenceError(f"not allowed in a {kind} cadence: {names}")
        if kind == "daily":
            raw_time = data.get("time_of_day")
            if raw_time is None:
                raise CadenceError("a daily cadence needs a time of day (HH:MM)")
            match = _HH_MM.fullmatch(raw_time) if isinstance(raw_time, str) else None
            if match is None:
                raise CadenceError(f"time of day {_show(raw_time)} is not HH:MM, e.g. 09:00")
            wall = time(int(match[1]), int(match[2]))
            return cls("daily", wall, data.get("timezone", "UTC"))
        return cls(cast(Kind, kind), minute=data.get("minute"))

    def to_dict(self) -> dict[str, object]:
        """The JSON-ready form that `from_dict` reads back to an equal Cadence."""
        data: dict[str, object] = {"kind": self.kind}
        if self.minute is not None:
            data["minute"] = self.minute
        if self.time_of_day is not None:
            data["time_of_day"] = self.time_of_day.strftime("%H:%M")
            data["timezone"] = self.timezone
        return data


def parse_cadence(data: object) -> Cadence:
    """Validate untrusted input (a form, the API, a stored row); raises CadenceError only."""
    return Cadence.from_dict(data)


def check_timezone(name: str) -> None:
    """Raise CadenceError unless `name` is a time zone a daily cadence may use; lets a form
    report a bad zone beside its other errors rather than after them."""
    _zone(name)


def next_run_at(cadence: Cadence, *, after: datetime, spread_key: int = 0) -> datetime | None:
    """The first due time strictly after `after`, in UTC; None when no schedule applies.

    once and realtime return None: a once sync runs when created or triggered, a realtime
    sync when its cohort changes. A daily wall time that a spring-forward gap skips runs at
    the end of the gap; an ambiguous autumn wall time runs once, at its first occurrence.
    """
    after = _require_aware(after, "after").astimezone(UTC)
    if cadence.kind == "hourly":
        minute = hourly_minute(cadence, spread_key)
        slot = after.replace(minute=minute, second=0, microsecond=0)
        return slot if slot > after else slot + timedelta(hours=1)
    if cadence.kind == "daily":
        assert cadence.time_of_day is not None  # guaranteed by __post_init__
        wall, zone = cadence.time_of_day, _zone(cadence.timezone)
        today = after.astimezone(zone).date()
        slot = _instant(today, wall, zone)
        # Tomorrow's slot is always after `after`, even when a gap or an overlap lies between.
        return slot if slot > after else _instant(today + timedelta(days=1), wall, zone)
    return None


def advance_after_missed(
    cadence: Cadence, *, due: datetime, now: datetime, spread_key: int
) -> datetime | None:
    """The next_run_at to store after running slot `due`: after both it and `now`, so a
    dispatcher that was down for a day runs each sync once, not once per missed slot."""
    due, now = _require_aware(due, "due"), _require_aware(now, "now")
    return next_run_at(cadence, after=max(due, now), spread_key=spread_key)


def hourly_minute(cadence: Cadence, spread_key: int) -> int:
    """The minute past the hour an hourly cadence runs at: fixed, or spread by `spread_key`."""
    return cadence.minute if cadence.minute is not None else spread_key % 60


def describe(cadence: Cadence, *, spread_key: int | None = None) -> str:
    """Human text for pages. Pass `spread_key` to show a spread hourly sync's actual minute."""
    if cadence.kind == "hourly":
        if cadence.minute is None and spread_key is None:
            return "Hourly"
        return f"Hourly at :{hourly_minute(cadence, spread_key or 0):02d}"
    if cadence.kind == "daily":
        assert cadence.time_of_day is not None
        return f"Daily at {cadence.time_of_day.strftime('%H:%M')} {cadence.timezone}"
    if cadence.kind == "realtime":
        return "Real-time (within a minute of each change)"
    return "Once"


def _instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of `wall` on `day` in `zone`, fold=0 for ambiguous times, and the end
    of the gap for times a spring-forward skips."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In a gap, zoneinfo reads the wall time once with each offset; the transition lies
    # between the two readings, and its exact second is found by bisection.
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = int(min(first, second).timestamp()), int(max(first, second).timestamp())
    offset_after = datetime.fromtimestamp(hi, zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == offset_after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _require_aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise CadenceError(f"{name} must be a time-zone-aware datetime, got {_show(value)}")
    return value


def _zone(name: str) -> ZoneInfo:
    # Checked against the published list rather than ZoneInfo alone, which also loads
    # "posixrules" and the leap-second "right/..." files (whose clocks are ~27 s off).
    if not isinstance(name, str) or name not in _known_zones():
        raise CadenceError(f"unknown time zone {_show(name)}; use an IANA name like Europe/Paris")
    return ZoneInfo(name)


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _unknown_kind(kind: object) -> CadenceError:
    return CadenceError(f"unknown cadence kind {_show(kind)}; expected one of {', '.join(KINDS)}")


def _show(value: object) -> str:
    """repr() capped in length, so a pasted essay does not become the error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
