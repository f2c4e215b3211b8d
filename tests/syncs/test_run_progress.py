"""The arithmetic behind a run's progress bar, rate and time left, with a fixed clock."""

from datetime import UTC, datetime, timedelta

from syncs.pages.progress import duration_between, estimate_progress, format_duration

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_a_queued_run_with_nothing_planned_is_indeterminate():
    progress = estimate_progress(processed=0, planned=0, started_at=None, now=NOW, finished=False)
    assert progress.percent is None
    assert progress.members_per_second is None
    assert progress.time_left == ""


def test_rate_and_time_left_come_from_the_elapsed_time_and_members_processed():
    progress = estimate_progress(
        processed=300, planned=1200, started_at=NOW - timedelta(seconds=10), now=NOW, finished=False
    )
    assert progress.percent == 25
    assert progress.members_per_second == 30
    assert progress.seconds_left == 30
    assert progress.time_left == "30 s"


def test_a_running_run_that_has_not_moved_yet_has_no_rate():
    progress = estimate_progress(
        processed=0, planned=500, started_at=NOW - timedelta(seconds=3), now=NOW, finished=False
    )
    assert (progress.percent, progress.members_per_second, progress.seconds_left) == (0, None, None)


def test_a_finished_run_shows_no_rate_and_a_full_bar_even_with_nothing_planned():
    done = estimate_progress(
        processed=200, planned=200, started_at=NOW - timedelta(seconds=5), now=NOW, finished=True
    )
    assert (done.percent, done.members_per_second, done.seconds_left) == (100, None, None)
    empty = estimate_progress(processed=0, planned=0, started_at=NOW, now=NOW, finished=True)
    assert empty.percent == 100


def test_the_percentage_never_passes_100_and_time_left_never_goes_negative():
    progress = estimate_progress(
        processed=120, planned=100, started_at=NOW - timedelta(seconds=1), now=NOW, finished=False
    )
    assert progress.percent == 100
    assert progress.seconds_left == 0


def test_a_clock_behind_the_start_time_gives_no_rate_instead_of_a_division_error():
    progress = estimate_progress(
        processed=10, planned=100, started_at=NOW + timedelta(seconds=1), now=NOW, finished=False
    )
    assert progress.members_per_second is None


def test_durations_read_as_short_text():
    assert format_duration(0.42) == "0.4 s"
    assert format_duration(42) == "42 s"
    assert format_duration(185) == "3 min 5 s"
    assert format_duration(120) == "2 min"
    assert format_duration(7800) == "2 h 10 min"
    assert format_duration(3600) == "1 h"


def test_a_duration_needs_both_ends():
    assert duration_between(NOW, None) == ""
    assert duration_between(None, NOW) == ""
    assert duration_between(NOW - timedelta(seconds=90), NOW) == "1 min 30 s"
