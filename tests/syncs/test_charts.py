import re
from datetime import UTC, datetime, timedelta

from core.charts import MARGIN_LEFT, MARGIN_RIGHT, step_chart

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def commands(path):
    return re.findall(r"([MHV])([\d.,]+)", path)


def test_there_is_no_chart_for_fewer_than_two_samples():
    assert step_chart([]) is None
    assert step_chart([(T0, 10)]) is None
    assert step_chart([(T0, 10)], end=T0 + timedelta(days=3)) is None


def test_a_step_line_holds_each_count_until_the_next_sample():
    chart = step_chart([(T0, 100), (T0 + timedelta(days=1), 300), (T0 + timedelta(days=2), 200)])
    assert chart is not None
    assert chart.path == "M76.0,170.0H350.0V12.0H624.0V91.0"


def test_the_highest_count_is_at_the_top_and_the_lowest_at_the_bottom():
    chart = step_chart([(T0, 5_000), (T0 + timedelta(hours=5), 1_250_000)])
    assert chart is not None
    low, high = chart.y_ticks
    assert (low.label, low.position) == ("5,000", chart.bottom)
    assert (high.label, high.position) == ("1,250,000", chart.top)


def test_the_last_count_extends_to_the_end_of_the_time_axis():
    end = T0 + timedelta(days=10)
    chart = step_chart([(T0, 1), (T0 + timedelta(days=5), 2)], end=end)
    assert chart is not None
    assert chart.path.endswith(f"H{chart.right:.1f}")
    assert chart.right == 640 - MARGIN_RIGHT
    assert [t.label for t in chart.x_ticks] == ["Nov 1", "Nov 6", "Nov 11"]
    assert [t.anchor for t in chart.x_ticks] == ["start", "middle", "end"]
    assert chart.x_ticks[0].position == MARGIN_LEFT


def test_an_end_before_the_last_sample_is_ignored():
    chart = step_chart([(T0, 1), (T0 + timedelta(days=5), 2)], end=T0)
    assert chart is not None
    assert chart.x_ticks[-1].label == "Nov 6"
    assert commands(chart.path)[-1][0] == "V"


def test_short_spans_are_labelled_with_times():
    chart = step_chart([(T0, 1), (T0 + timedelta(hours=3), 2)])
    assert chart is not None
    assert chart.x_ticks[0].label == "Nov 1 09:00"
    assert chart.x_ticks[-1].label == "Nov 1 12:00"


def test_a_flat_history_is_drawn_across_the_middle_with_one_label():
    chart = step_chart([(T0, 42), (T0 + timedelta(days=1), 42)])
    assert chart is not None
    middle = (chart.top + chart.bottom) / 2
    assert chart.path == f"M76.0,{middle:.1f}H624.0"
    assert [(t.label, t.position) for t in chart.y_ticks] == [("42", middle)]


def test_a_month_of_minute_samples_collapses_to_at_most_a_few_commands_per_pixel():
    minutes = 30 * 24 * 60
    points = [(T0 + timedelta(minutes=n), 1000 + (n % 7) * 10) for n in range(minutes)]
    points[20_000] = (points[20_000][0], 5)  # a dip that must stay visible
    chart = step_chart(points)
    assert chart is not None
    found = commands(chart.path)
    assert len(found) < 4 * 640
    ys = [float(value) for command, value in found if command == "V"]
    assert max(ys) == chart.bottom  # the dip to 5 is the lowest count: drawn at the bottom
    assert min(ys) == chart.top


def test_the_labels_of_the_y_axis_sit_left_of_the_plot():
    chart = step_chart([(T0, 1), (T0 + timedelta(days=1), 2)])
    assert chart is not None
    assert chart.y_label_x < chart.left
    assert chart.x_label_y > chart.bottom
