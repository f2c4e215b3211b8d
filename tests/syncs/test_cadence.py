"""Cadences: parsing, describing and the next due time, across DST. No database, fixed clocks."""

import functools
import json
import re
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from syncs.cadence import (
    Cadence,
    CadenceError,
    advance_after_missed,
    describe,
    next_run_at,
    parse_cadence,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def daily(hh_mm: str, zone: str = "UTC") -> Cadence:
    return parse_cadence({"kind": "daily", "time_of_day": hh_mm, "timezone": zone})


# --- once and realtime ------------------------------------------------------------------------


def test_once_is_never_due_by_schedule():
    assert next_run_at(Cadence("once"), after=utc(2025, 6, 1, 12)) is None


def test_realtime_is_never_due_by_schedule():
    assert next_run_at(Cadence("realtime"), after=utc(2025, 6, 1, 12)) is None


# --- hourly -----------------------------------------------------------------------------------


def test_hourly_runs_at_the_next_configured_minute():
    cadence = Cadence("hourly", minute=17)
    assert next_run_at(cadence, after=utc(2025, 6, 1, 10, 16, 59)) == utc(2025, 6, 1, 10, 17)
    assert next_run_at(cadence, after=utc(2025, 6, 1, 10, 18)) == utc(2025, 6, 1, 11, 17)


def test_hourly_slot_equal_to_after_is_not_returned():
    cadence = Cadence("hourly", minute=17)
    assert next_run_at(cadence, after=utc(2025, 6, 1, 10, 17)) == utc(2025, 6, 1, 11, 17)
    just_after = utc(2025, 6, 1, 10, 17) + timedelta(microseconds=1)
    assert next_run_at(cadence, after=just_after) == utc(2025, 6, 1, 11, 17)


def test_hourly_rolls_over_midnight_and_the_year():
    cadence = Cadence("hourly", minute=0)
    assert next_run_at(cadence, after=utc(2025, 12, 31, 23, 30)) == utc(2026, 1, 1, 0, 0)


def test_hourly_accepts_after_in_any_zone_and_answers_in_utc():
    after = datetime(2025, 6, 1, 15, 50, tzinfo=ZoneInfo("Asia/Kolkata"))  # 10:20 UTC
    result = next_run_at(Cadence("hourly", minute=17), after=after)
    assert result == utc(2025, 6, 1, 11, 17)
    assert result is not None and result.tzinfo is UTC


def test_spread_hourly_runs_at_spread_key_modulo_60():
    cadence = Cadence("hourly")
    result = next_run_at(cadence, after=utc(2025, 6, 1, 10, 0), spread_key=1234)
    assert result == utc(2025, 6, 1, 10, 34)


def test_spread_hourly_is_stable_for_one_sync():
    cadence = Cadence("hourly")
    after = utc(2025, 6, 1, 10, 0)
    first = next_run_at(cadence, after=after, spread_key=987_654)
    assert all(next_run_at(cadence, after=after, spread_key=987_654) == first for _ in range(5))
    assert first is not None
    # The next hour keeps the same minute.
    assert next_run_at(cadence, after=first, spread_key=987_654) == first + timedelta(hours=1)


def test_spread_hourly_puts_ten_thousand_syncs_evenly_over_all_sixty_minutes():
    cadence = Cadence("hourly")
    after = utc(2025, 6, 1, 10, 0)
    minutes = Counter()
    for sync_id in range(1, 10_001):
        result = next_run_at(cadence, after=after, spread_key=sync_id)
        assert result is not None
        assert 0 <= result.minute <= 59
        minutes[result.minute] += 1
    assert len(minutes) == 60
    assert set(minutes.values()) <= {166, 167}


def test_a_fixed_minute_ignores_the_spread_key():
    cadence = Cadence("hourly", minute=5)
    assert next_run_at(cadence, after=utc(2025, 6, 1, 10), spread_key=42) == utc(2025, 6, 1, 10, 5)


# --- daily ------------------------------------------------------------------------------------


def test_daily_runs_later_today_or_tomorrow():
    cadence = daily("09:00")
    assert next_run_at(cadence, after=utc(2025, 6, 1, 8, 59)) == utc(2025, 6, 1, 9)
    assert next_run_at(cadence, after=utc(2025, 6, 1, 9, 1)) == utc(2025, 6, 2, 9)


def test_daily_slot_equal_to_after_is_not_returned():
    cadence = daily("09:00", "Europe/Paris")
    assert next_run_at(cadence, after=utc(2025, 6, 1, 7)) == utc(2025, 6, 2, 7)


def test_daily_in_paris_skips_to_the_end_of_the_spring_gap():
    # 2025-03-30: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; 02:30 does not exist that day.
    cadence = daily("02:30", "Europe/Paris")
    gap_day = next_run_at(cadence, after=utc(2025, 3, 29, 12))
    assert gap_day == utc(2025, 3, 30, 1)
    assert gap_day.astimezone(ZoneInfo("Europe/Paris")).time() == time(3, 0)
    assert next_run_at(cadence, after=gap_day) == utc(2025, 3, 31, 0, 30)


def test_daily_in_paris_keeps_its_wall_time_over_the_spring_change():
    cadence = daily("09:00", "Europe/Paris")
    assert next_run_at(cadence, after=utc(2025, 3, 29, 8)) == utc(2025, 3, 30, 7)  # a 23 h day


def test_daily_in_paris_runs_an_ambiguous_autumn_time_once_at_its_first_occurrence():
    # 2025-10-26: 03:00 CEST falls back to 02:00 CET; 02:30 happens at 00:30 and 01:30 UTC.
    cadence = daily("02:30", "Europe/Paris")
    first = next_run_at(cadence, after=utc(2025, 10, 25, 12))
    assert first == utc(2025, 10, 26, 0, 30)
    assert next_run_at(cadence, after=first) == utc(2025, 10, 27, 1, 30)


def test_daily_in_new_york_skips_to_the_end_of_the_spring_gap():
    # 2025-03-09: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
    cadence = daily("02:15", "America/New_York")
    gap_day = next_run_at(cadence, after=utc(2025, 3, 8, 12))
    assert gap_day == utc(2025, 3, 9, 7)
    assert next_run_at(cadence, after=gap_day) == utc(2025, 3, 10, 6, 15)


def test_daily_in_new_york_runs_an_ambiguous_autumn_time_once_at_its_first_occurrence():
    # 2025-11-02: 02:00 EDT falls back to 01:00 EST; 01:30 happens at 05:30 and 06:30 UTC.
    cadence = daily("01:30", "America/New_York")
    first = next_run_at(cadence, after=utc(2025, 11, 1, 12))
    assert first == utc(2025, 11, 2, 5, 30)
    assert next_run_at(cadence, after=first) == utc(2025, 11, 3, 6, 30)


def test_daily_in_new_york_keeps_its_wall_time_over_the_autumn_change():
    cadence = daily("09:00", "America/New_York")
    assert next_run_at(cadence, after=utc(2025, 11, 1, 13)) == utc(2025, 11, 2, 14)  # a 25 h day


def test_daily_in_kolkata_uses_the_half_hour_offset():
    cadence = daily("09:00", "Asia/Kolkata")  # UTC+05:30, 03:30 UTC
    assert next_run_at(cadence, after=utc(2025, 6, 1, 3, 29, 59)) == utc(2025, 6, 1, 3, 30)
    assert next_run_at(cadence, after=utc(2025, 6, 1, 3, 30)) == utc(2025, 6, 2, 3, 30)


def test_daily_in_tokyo_is_exactly_a_day_apart_all_year():
    cadence = daily("00:00", "Asia/Tokyo")  # midnight in Tokyo is 15:00 UTC the day before
    run = next_run_at(cadence, after=utc(2025, 1, 1))
    assert run == utc(2025, 1, 1, 15)
    for _ in range(366):
        following = next_run_at(cadence, after=run)
        assert following == run + timedelta(days=1)
        run = following


def test_daily_in_paris_keeps_nine_oclock_all_year_with_two_uneven_days():
    zone = ZoneInfo("Europe/Paris")
    cadence = daily("09:00", "Europe/Paris")
    run = next_run_at(cadence, after=utc(2025, 1, 1))
    gaps = Counter()
    for _ in range(365):
        following = next_run_at(cadence, after=run)
        assert following.astimezone(zone).time() == time(9, 0)
        gaps[following - run] += 1
        run = following
    assert gaps == {timedelta(hours=24): 363, timedelta(hours=23): 1, timedelta(hours=25): 1}


def test_naive_after_is_refused():
    for cadence in (Cadence("once"), Cadence("hourly", minute=1), daily("09:00")):
        with pytest.raises(CadenceError, match="after must be a time-zone-aware datetime"):
            next_run_at(cadence, after=datetime(2025, 6, 1, 12))


# --- advance_after_missed ---------------------------------------------------------------------


def test_advancing_after_downtime_skips_the_missed_slots():
    cadence = Cadence("hourly", minute=17)
    due, now = utc(2025, 6, 1, 10, 17), utc(2025, 6, 3, 12, 5)
    assert advance_after_missed(cadence, due=due, now=now, spread_key=0) == utc(2025, 6, 3, 12, 17)


def test_advancing_on_time_moves_to_the_following_slot():
    cadence = daily("09:00", "Europe/Paris")
    due = utc(2025, 6, 1, 7)
    assert advance_after_missed(cadence, due=due, now=due, spread_key=0) == utc(2025, 6, 2, 7)


def test_advancing_a_once_sync_leaves_it_unscheduled():
    now = utc(2025, 6, 1)
    assert advance_after_missed(Cadence("once"), due=now, now=now, spread_key=3) is None


def test_advancing_with_a_naive_now_is_refused():
    with pytest.raises(CadenceError, match="now must be a time-zone-aware datetime"):
        advance_after_missed(
            Cadence("hourly"), due=utc(2025, 6, 1), now=datetime(2025, 6, 1), spread_key=1
        )


# --- describe ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cadence", "text"),
    [
        (Cadence("once"), "Once"),
        (Cadence("hourly", minute=17), "Hourly at :17"),
        (Cadence("hourly", minute=5), "Hourly at :05"),
        (Cadence("hourly"), "Hourly"),
        (Cadence("daily", time(9, 0), "Europe/Paris"), "Daily at 09:00 Europe/Paris"),
        (Cadence("realtime"), "Real-time (within a minute of each change)"),
    ],
)
def test_describe_gives_page_text(cadence, text):
    assert describe(cadence) == text


def test_describe_shows_a_spread_syncs_minute_when_given_its_key():
    assert describe(Cadence("hourly"), spread_key=1234) == "Hourly at :34"


# --- storing and parsing ----------------------------------------------------------------------

VALID = [
    {"kind": "once"},
    {"kind": "realtime"},
    {"kind": "hourly"},
    {"kind": "hourly", "minute": 0},
    {"kind": "hourly", "minute": 59},
    {"kind": "daily", "time_of_day": "00:00", "timezone": "UTC"},
    {"kind": "daily", "time_of_day": "23:59", "timezone": "Asia/Kolkata"},
]


@pytest.mark.parametrize("data", VALID)
def test_stored_form_round_trips_through_json(data):
    cadence = Cadence.from_dict(data)
    stored = json.loads(json.dumps(cadence.to_dict()))
    assert stored == data
    assert Cadence.from_dict(stored) == cadence


def test_daily_timezone_defaults_to_utc():
    assert parse_cadence({"kind": "daily", "time_of_day": "09:00"}) == Cadence("daily", time(9))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "must be an object"),
        (["hourly"], "must be an object"),
        ("hourly", "must be an object"),
        ({}, "needs a 'kind'"),
        ({"kind": "weekly"}, "unknown cadence kind 'weekly'"),
        ({"kind": 3}, "unknown cadence kind 3"),
        ({"kind": "Daily", "time_of_day": "09:00"}, "unknown cadence kind 'Daily'"),
        ({"kind": "daily"}, "daily cadence needs a time of day"),
        ({"kind": "daily", "time_of_day": None}, "daily cadence needs a time of day"),
        ({"kind": "daily", "time_of_day": "9:00"}, "time of day '9:00' is not HH:MM"),
        ({"kind": "daily", "time_of_day": "24:00"}, "time of day '24:00' is not HH:MM"),
        ({"kind": "daily", "time_of_day": "09:60"}, "is not HH:MM"),
        ({"kind": "daily", "time_of_day": "09:00:00"}, "is not HH:MM"),
        ({"kind": "daily", "time_of_day": "0900"}, "is not HH:MM"),
        ({"kind": "daily", "time_of_day": "09:00\n"}, "is not HH:MM"),
        ({"kind": "daily", "time_of_day": "\u0660\u0669:\u0660\u0660"}, "is not HH:MM"),
        ({"kind": "daily", "time_of_day": 900}, "time of day 900 is not HH:MM"),
        ({"kind": "daily", "time_of_day": "09:00", "timezone": "Mars/Olympus"}, "time zone"),
        ({"kind": "daily", "time_of_day": "09:00", "timezone": ""}, "unknown time zone"),
        ({"kind": "daily", "time_of_day": "09:00", "timezone": None}, "unknown time zone"),
        ({"kind": "daily", "time_of_day": "09:00", "timezone": "../UTC"}, "unknown time zone"),
        ({"kind": "daily", "time_of_day": "09:00", "timezone": "Europe"}, "unknown time zone"),
        ({"kind": "daily", "time_of_day": "09:00", "timezone": "posixrules"}, "unknown time"),
        ({"kind": "daily", "time_of_day": "09:00", "timezone": "zone.tab"}, "unknown time zone"),
        ({"kind": "daily", "time_of_day": "09:00", "timezone": "x" * 5000}, "unknown time zone"),
        ({"kind": "daily", "time_of_day": "09:00", "timezone": "UTC\x00"}, "unknown time zone"),
        (
            {"kind": "daily", "time_of_day": "09:00", "timezone": "right/Europe/Paris"},
            "unknown time zone",
        ),
        ({"kind": "hourly", "minute": 60}, "minute 60 is out of range"),
        ({"kind": "hourly", "minute": -1}, "minute -1 is out of range"),
        ({"kind": "hourly", "minute": "17"}, "minute '17' is not a whole number"),
        ({"kind": "hourly", "minute": 17.0}, "minute 17.0 is not a whole number"),
        ({"kind": "hourly", "minute": True}, "minute True is not a whole number"),
        ({"kind": "hourly", "timezone": "UTC"}, "not allowed in a hourly cadence: 'timezone'"),
        ({"kind": "once", "minute": 5}, "not allowed in a once cadence: 'minute'"),
        ({"kind": "realtime", "time_of_day": "09:00"}, "not allowed in a realtime cadence"),
        (
            {"kind": "daily", "time_of_day": "09:00", "minute": 3, "every": 2},
            "not allowed in a daily cadence: 'every', 'minute'",
        ),
        ({"kind": "daily", "time_of_day": "09:00", 1: 2}, "not allowed in a daily cadence: 1"),
    ],
)
def test_invalid_input_is_refused_with_a_message_naming_the_problem(data, message):
    with pytest.raises(CadenceError, match=re.escape(message)):
        parse_cadence(data)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Cadence("weekly"), "unknown cadence kind"),  # type: ignore[arg-type]
        (lambda: Cadence("daily"), "needs a time of day"),
        (lambda: Cadence("daily", time(9, 0, 30)), "not a whole minute"),
        (lambda: Cadence("daily", time(9, tzinfo=UTC)), "not a whole minute"),
        (lambda: Cadence("daily", time(9), "Nowhere/Else"), "unknown time zone"),
        (lambda: Cadence("hourly", minute=75), "out of range"),
        (lambda: Cadence("hourly", timezone="Europe/Paris"), "takes no time of day or time zone"),
        (lambda: Cadence("once", time(9)), "takes no time of day"),
        (lambda: Cadence("realtime", minute=3), "takes no minute"),
    ],
)
def test_an_invalid_cadence_cannot_be_constructed(build, message):
    with pytest.raises(CadenceError, match=message):
        build()


def test_a_cadence_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_cadence({"kind": "weekly"})


def test_a_long_bad_value_is_shortened_in_the_message():
    with pytest.raises(CadenceError) as error:
        parse_cadence({"kind": "x" * 5000})
    assert len(str(error.value)) < 120


# --- properties -------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "America/Sao_Paulo",  # DST changed at midnight until 2019
    "Pacific/Chatham",  # UTC+12:45 / +13:45
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
field_values = json_values | st.sampled_from(
    ["once", "hourly", "daily", "realtime", "09:00", "02:30", "Europe/Paris", 17, 60, -1]
)
cadence_like = st.dictionaries(
    st.sampled_from(["kind", "time_of_day", "timezone", "minute", "every"]), field_values
)


@given(st.one_of(json_values, cadence_like))
def test_any_input_either_parses_or_raises_cadence_error(data):
    try:
        cadence = parse_cadence(data)
    except CadenceError as error:
        assert str(error)
    else:
        assert parse_cadence(cadence.to_dict()) == cadence


wall_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))
any_instant = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31), timezones=st.just(UTC))
hourly_cadences = st.builds(
    lambda minute: Cadence("hourly", minute=minute), st.none() | st.integers(0, 59)
)


@functools.cache
def _offset_changes(zone_name: str, year: int) -> tuple[datetime, ...]:
    """The UTC instants in `year` at which `zone_name` changes its offset, to the second."""
    zone, changes = ZoneInfo(zone_name), []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        lo, hi = int(day.timestamp()), int((day + timedelta(days=1)).timestamp())
        if (
            datetime.fromtimestamp(lo, zone).utcoffset()
            != datetime.fromtimestamp(hi, zone).utcoffset()
        ):
            while hi - lo > 1:
                mid = (lo + hi) // 2
                same = (
                    datetime.fromtimestamp(mid, zone).utcoffset()
                    == datetime.fromtimestamp(lo, zone).utcoffset()
                )
                lo, hi = (mid, hi) if same else (lo, mid)
            changes.append(datetime.fromtimestamp(hi, UTC))
        day += timedelta(days=1)
    return tuple(changes)


@st.composite
def daily_cases(draw: st.DrawFn) -> tuple[Cadence, datetime]:
    """A daily cadence and an `after`. In zones and years with DST both sit just before an
    offset change, the wall time in or next to its gap or overlap: random dates rarely hit."""
    zone_name = draw(st.sampled_from(ZONES))
    changes = _offset_changes(zone_name, draw(st.integers(2000, 2099)))
    if not changes:
        return Cadence("daily", draw(wall_times), zone_name), draw(any_instant)
    change = draw(st.sampled_from(changes))
    clock = (change - timedelta(seconds=1)).astimezone(ZoneInfo(zone_name)).replace(tzinfo=None)
    start = clock.replace(second=0) + timedelta(minutes=1)  # the wall time the change starts at
    wall = (start + timedelta(minutes=draw(st.integers(-60, 60)))).time()
    after = change + timedelta(seconds=draw(st.integers(-25 * 3600, 3600)))
    return Cadence("daily", wall, zone_name), after


@hypothesis_settings(max_examples=500, deadline=None)
@given(daily_cases())
def test_daily_next_run_is_the_first_occurrence_within_25_hours(case):
    cadence, after = case
    zone = ZoneInfo(cadence.timezone)
    result = next_run_at(cadence, after=after)
    assert result is not None and result.tzinfo is UTC
    assert after < result <= after + timedelta(hours=25)

    local = result.astimezone(zone)
    wall = datetime.combine(local.date(), cadence.time_of_day)
    if _exists(wall, zone):
        assert local.time() == cadence.time_of_day
        assert local.fold == 0  # an autumn overlap runs at its first occurrence
    else:
        # A spring-forward gap: the run is the first instant after it, later on the clock.
        assert local.time() > cadence.time_of_day
        assert (result - timedelta(seconds=1)).astimezone(zone).utcoffset() != local.utcoffset()

    # Each local day runs once: the next run is on a later local date, not the repeat hour.
    following = next_run_at(cadence, after=result)
    assert following is not None and following.astimezone(zone).date() > local.date()

    # Nothing was skipped: the occurrence a local day earlier was not after `after`.
    earlier = datetime.combine(local.date() - timedelta(days=1), cadence.time_of_day)
    if _exists(earlier, zone):
        assert earlier.replace(tzinfo=zone).astimezone(UTC) <= after


@hypothesis_settings(max_examples=300, deadline=None)
@given(hourly_cadences, any_instant, st.integers(-(10**9), 10**9))
def test_hourly_next_run_is_within_60_minutes_at_the_configured_minute(cadence, after, key):
    result = next_run_at(cadence, after=after, spread_key=key)
    assert result is not None and result.tzinfo is UTC
    assert after < result <= after + timedelta(minutes=60)
    expected = cadence.minute if cadence.minute is not None else key % 60
    assert 0 <= result.minute <= 59
    assert (result.minute, result.second, result.microsecond) == (expected, 0, 0)


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether a naive wall time happens at all in `zone` (it does not inside a gap)."""
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def test_the_property_oracle_knows_the_paris_gap_from_the_overlap():
    paris = ZoneInfo("Europe/Paris")
    assert not _exists(datetime(2025, 3, 30, 2, 30), paris)
    assert _exists(datetime(2025, 10, 26, 2, 30), paris)
    assert _exists(datetime(2025, 3, 30, 3, 0), paris)
