"""A sync's page: run history paged and filtered by status and trigger, the chart of adds,
removes and failures per run, the live run's progress, and the history refreshing itself when
that run finishes. Runs are made through the ORM."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from syncs.models import Sync, SyncRun
from syncs.views.syncs import CHART_RUNS, HISTORY_SIZE, RUN_FINISHED_EVENT
from tests.factories import make_run, make_sync

pytestmark = pytest.mark.django_db
Status = SyncRun.Status
Trigger = SyncRun.Trigger


@pytest.fixture
def sync(cohort):
    return make_sync(cohort=cohort, cadence="hourly")


def finished(sync, *, minutes_ago=0, status=Status.SUCCEEDED, trigger=Trigger.SCHEDULE, **fields):
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return make_run(
        sync, status=status, trigger=trigger, queued_at=at, started_at=at, finished_at=at, **fields
    )


def detail(client, sync, **query):
    return client.get(reverse("syncs:sync_detail", args=[sync.pk]), query)


def run_links(response, sync):
    return [run.pk for run, _ in response.context["history"]]


# Access: every view here reads; the writes (Run now, pause, resume, resync) have their own tests


def test_the_sync_page_and_its_progress_need_a_role(client, outsider_client, viewer_client, sync):
    run = make_run(sync, status=Status.QUEUED, trigger=Trigger.SCHEDULE)
    urls = [
        reverse("syncs:sync_detail", args=[sync.pk]),
        reverse("syncs:run_progress", args=[sync.pk, run.pk]),
    ]
    for url in urls:
        assert client.get(url)["Location"].startswith(reverse("login")), url
        assert outsider_client.get(url).status_code == 404, url
        assert viewer_client.get(url).status_code == 200, url


def test_viewers_see_no_buttons_that_change_the_sync(viewer_client, marketer_client, sync):
    buttons = ('id="run-now"', 'id="pause"', 'id="resync"')
    viewer_page = detail(viewer_client, sync).content.decode()
    marketer_page = detail(marketer_client, sync).content.decode()
    for button in buttons:
        assert button not in viewer_page
        assert button in marketer_page


def test_a_paused_sync_offers_resume_instead_of_pause(marketer_client, sync):
    Sync.objects.filter(pk=sync.pk).update(status=Sync.Status.PAUSED)
    page = detail(marketer_client, sync).content.decode()
    assert 'id="resume"' in page
    assert 'id="pause"' not in page


# History: paging and filters


def test_the_history_is_paged_newest_first(viewer_client, sync):
    runs = [finished(sync, minutes_ago=100 - n) for n in range(HISTORY_SIZE + 3)]
    first = detail(viewer_client, sync)
    assert run_links(first, sync) == [run.pk for run in reversed(runs)][:HISTORY_SIZE]
    page = first.content.decode()
    assert f"{HISTORY_SIZE + 3} runs" in page
    assert "Page 1 of 2" in page
    second = detail(viewer_client, sync, page="2")
    assert run_links(second, sync) == [run.pk for run in runs[:3]][::-1]


def test_filters_by_status_and_trigger_and_keep_them_across_pages(viewer_client, sync):
    failed_manual = [
        finished(sync, minutes_ago=200 - n, status=Status.FAILED, trigger=Trigger.MANUAL)
        for n in range(HISTORY_SIZE + 1)
    ]
    finished(sync, minutes_ago=5, status=Status.FAILED, trigger=Trigger.SCHEDULE)
    finished(sync, minutes_ago=4, status=Status.SUCCEEDED, trigger=Trigger.MANUAL)
    response = detail(viewer_client, sync, status="failed", trigger="manual")
    assert response.status_code == 200
    assert set(run_links(response, sync)) <= {run.pk for run in failed_manual}
    page = response.content.decode()
    assert f"{HISTORY_SIZE + 1} runs matching" in page
    assert "?status=failed&amp;trigger=manual&amp;page=2" in page
    second = detail(viewer_client, sync, status="failed", trigger="manual", page="2")
    assert run_links(second, sync) == [failed_manual[0].pk]
    only_status = detail(viewer_client, sync, status="failed")
    assert only_status.context["page"].paginator.count == HISTORY_SIZE + 2


def test_a_filter_that_matches_nothing_says_so(viewer_client, sync):
    finished(sync)
    page = detail(viewer_client, sync, status="held").content.decode()
    assert "No run matches this filter." in page
    assert "has not run yet" not in page


@pytest.mark.parametrize(
    "query", [{"status": "exploded"}, {"trigger": "cron"}, {"status": "failed", "trigger": "x"}]
)
def test_an_unknown_filter_value_is_an_error_and_lists_nothing(viewer_client, sync, query):
    finished(sync, status=Status.FAILED)
    response = detail(viewer_client, sync, **query)
    assert response.status_code == 400
    assert response.context["history"] == []
    assert response.context["filters"].errors
    page = response.content.decode()
    assert "Select a valid choice." in page
    assert "the runs are listed once the filter is valid" in page
    assert SyncRun.objects.count() == 1


def test_a_page_that_is_not_a_number_shows_the_first(viewer_client, sync):
    run = finished(sync)
    response = detail(viewer_client, sync, page="abc")
    assert response.status_code == 200
    assert run_links(response, sync) == [run.pk]


# The chart of the latest runs


def test_the_chart_shows_adds_removes_and_failures_of_finished_runs_oldest_first(
    viewer_client, sync
):
    old = finished(sync, minutes_ago=30, added=10, removed=2, failed=1)
    new = finished(sync, minutes_ago=20, added=4)
    make_run(sync, status=Status.RUNNING, trigger=Trigger.SCHEDULE, added=500)  # not charted
    response = detail(viewer_client, sync)
    chart = response.context["chart"]
    assert [bar.title for bar in chart.bars] == [
        f"Run {old.pk}: 10 added",
        f"Run {old.pk}: 2 removed",
        f"Run {old.pk}: 1 failed",
        f"Run {new.pk}: 4 added",
    ]
    assert "of the last 2 finished runs: 14 added, 2 removed, 1 failed." in chart.summary
    assert '<figure class="bar-chart" id="run-changes">' in response.content.decode()


def test_the_chart_keeps_to_the_latest_runs(viewer_client, sync):
    runs = [finished(sync, minutes_ago=100 - n, added=n + 1) for n in range(CHART_RUNS + 5)]
    chart = detail(viewer_client, sync).context["chart"]
    charted = {bar.title.split(":")[0] for bar in chart.bars}
    assert charted == {f"Run {run.pk}" for run in runs[5:]}


def test_a_sync_with_no_finished_change_has_no_chart(viewer_client, sync):
    finished(sync)  # nothing added, removed or failed
    response = detail(viewer_client, sync)
    assert response.context["chart"] is None
    assert "No finished run has added, removed or failed a member yet." in (
        response.content.decode()
    )


# The live run, and the history refreshing when it ends


def test_the_live_run_shows_processed_of_planned_rate_and_time_left(viewer_client, sync):
    finished(sync, minutes_ago=60, added=3)
    run = make_run(
        sync,
        status=Status.RUNNING,
        trigger=Trigger.SCHEDULE,
        started_at=timezone.now() - timedelta(seconds=10),
        planned_adds=400,
        added=100,
    )
    page = detail(viewer_client, sync).content.decode()
    live = page[page.index('id="run-progress"') : page.index('id="sync-runs"')]
    assert reverse("syncs:run_progress", args=[sync.pk, run.pk]) in live
    assert '<span class="processed">100</span> of <span class="planned">400</span>' in live
    assert "members/s" in live
    assert "Time left" in live


def test_the_history_listens_for_the_end_of_the_live_run(viewer_client, sync):
    make_run(sync, status=Status.QUEUED, trigger=Trigger.SCHEDULE)
    page = detail(viewer_client, sync, status="failed").content.decode()
    assert f'hx-trigger="{RUN_FINISHED_EVENT} from:body"' in page
    assert 'hx-select="#sync-runs"' in page
    # It reloads what it shows, filters included.
    assert f'hx-get="/syncs/{sync.pk}/?status=failed"' in page


def test_the_progress_partial_announces_the_end_of_a_run_and_only_then(viewer_client, sync):
    run = make_run(sync, status=Status.RUNNING, trigger=Trigger.SCHEDULE, started_at=timezone.now())
    url = reverse("syncs:run_progress", args=[sync.pk, run.pk])
    running = viewer_client.get(url)
    assert "HX-Trigger" not in running.headers
    assert "hx-get" in running.content.decode()
    SyncRun.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    done = viewer_client.get(url)
    assert done.headers["HX-Trigger"] == RUN_FINISHED_EVENT
    assert "hx-get" not in done.content.decode()  # it stops polling


def test_the_sync_page_shows_a_finished_latest_run_only_in_the_history(viewer_client, sync):
    run = finished(sync)
    response = detail(viewer_client, sync)
    assert response.context["latest"] is None
    assert run_links(response, sync) == [run.pk]


def test_the_sync_list_shows_when_each_sync_runs_next(viewer_client, sync):
    Sync.objects.filter(pk=sync.pk).update(next_run_at=timezone.now() + timedelta(minutes=30))
    page = viewer_client.get(reverse("syncs:sync_list")).content.decode()
    assert "Next run" in page
    assert "in 29\xa0minutes" in page or "in 30\xa0minutes" in page
