"""The home page: what needs attention (failed and held runs, connections, paused syncs, stale
cohorts) or a clear all-well state, every sync with its latest outcome and next run, and the
members added and removed per day. Rows are made through the ORM."""

from datetime import timedelta
from functools import partial

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from cohorts.models import Cohort, CsvUpload, ImportRequest
from connections.models import Connection
from syncs.models import Sync, SyncRun
from syncs.pages.attention import SHOWN
from tests import factories
from tests.base import make_connection

pytestmark = pytest.mark.django_db
HOME = reverse("home")


@pytest.fixture(autouse=True)
def _fresh_chart_cache():
    cache.clear()  # the daily totals are kept for a minute; each test starts without them
    yield
    cache.clear()


# The home page's syncs are hourly and their runs scheduled, unless a test says otherwise.
make_sync = partial(factories.make_sync, cadence="hourly")
make_run = partial(factories.make_run, trigger=SyncRun.Trigger.SCHEDULE)


def age_cohort(sync, days):
    Cohort.objects.filter(pk=sync.cohort_id).update(
        updated_at=timezone.now() - timedelta(days=days)
    )


def home(client):
    response = client.get(HOME)
    assert response.status_code == 200
    return response, response.content.decode()


# Access


def test_home_requires_login_and_a_role(client, outsider_client, viewer_client):
    assert client.get(HOME)["Location"].startswith(reverse("login"))
    assert outsider_client.get(HOME).status_code == 404
    assert viewer_client.get(HOME).status_code == 200


# What needs attention


def test_all_is_well_says_so_plainly(viewer_client):
    sync = make_sync(last_run_status=SyncRun.Status.SUCCEEDED, last_run_at=timezone.now())
    make_run(sync, status=SyncRun.Status.SUCCEEDED, finished_at=timezone.now())
    response, page = home(viewer_client)
    assert response.context["attention"].total == 0
    assert "Nothing needs attention" in page
    assert 'class="card attention"' not in page


def test_a_sync_whose_latest_run_failed_links_to_that_run(viewer_client):
    sync = make_sync(
        name="Lapsed → Braze",
        last_run_status=SyncRun.Status.PARTIALLY_FAILED,
        last_run_at=timezone.now(),
        last_run_summary="+90 -0, 10 failed",
    )
    older = make_run(
        sync, status=SyncRun.Status.SUCCEEDED, queued_at=timezone.now() - timedelta(hours=2)
    )
    latest = make_run(sync, status=SyncRun.Status.PARTIALLY_FAILED, finished_at=timezone.now())
    make_sync(name="Fine", last_run_status=SyncRun.Status.SUCCEEDED)
    response, page = home(viewer_client)
    attention = response.context["attention"]
    assert attention.failed_count == 1
    assert [s.name for s in attention.failed] == ["Lapsed → Braze"]
    assert "Nothing needs attention" not in page
    assert "+90 -0, 10 failed" in page
    assert reverse("syncs:run_detail", args=[sync.pk, latest.pk]) in page
    assert reverse("syncs:run_detail", args=[sync.pk, older.pk]) not in page


def test_a_held_run_links_to_its_page_to_approve_it(marketer_client, viewer_client):
    sync = make_sync()
    run = make_run(sync, status=SyncRun.Status.HELD, planned_removes=1234)
    url = reverse("syncs:run_detail", args=[sync.pk, run.pk])
    response, page = home(marketer_client)
    assert response.context["attention"].held_count == 1
    assert f'href="{url}">review and approve</a>' in page
    assert "would remove 1,234 members" in page
    # A viewer cannot approve: the same link only offers to look.
    assert f'href="{url}">see the run</a>' in home(viewer_client)[1]


def test_connections_and_the_syncs_they_paused_are_listed(viewer_client):
    connection = make_connection(name="Braze EU")
    Connection.objects.filter(pk=connection.pk).update(
        state=Connection.State.NEEDS_ATTENTION, last_error="401: invalid API key"
    )
    paused = make_sync(name="Paused one", connection=connection, status=Sync.Status.NEEDS_ATTENTION)
    make_sync(name="Healthy one")
    response, page = home(viewer_client)
    attention = response.context["attention"]
    assert [c.name for c in attention.connections] == ["Braze EU"]
    assert [s.name for s in attention.paused] == ["Paused one"]
    assert "401: invalid API key" in page
    assert reverse("connections:detail", args=[connection.pk]) in page
    assert reverse("syncs:sync_detail", args=[paused.pk]) in page
    assert attention.total == 2


def test_a_recurring_sync_whose_cohort_has_not_changed_for_a_week_is_stale(viewer_client):
    stale = make_sync(name="Stale hourly")
    age_cohort(stale, 8)
    age_cohort(make_sync(name="Fresh hourly"), 6)
    age_cohort(make_sync(name="Done once", cadence={"kind": "once"}), 30)
    age_cohort(make_sync(name="Paused by hand", status=Sync.Status.PAUSED), 30)
    response, page = home(viewer_client)
    attention = response.context["attention"]
    assert [s.name for s in attention.stale] == ["Stale hourly"]
    assert attention.stale_count == 1
    assert "No new cohort data for 7+ days" in page
    assert reverse("cohorts:cohort_detail", args=[stale.cohort_id]) in page


def test_a_feed_that_keeps_sending_the_same_members_is_not_stale(viewer_client):
    now = timezone.now()
    pushed = make_sync(name="Partner pushes the same list daily")
    uploaded = make_sync(name="Same CSV uploaded again")
    refused = make_sync(name="Partner pushes refused")
    for sync in (pushed, uploaded, refused):
        age_cohort(sync, 30)

    def push(sync, status, http_status):
        ImportRequest.objects.create(
            cohort_id=sync.cohort_id,
            partner="amplitude",
            endpoint="cohorts/users",
            status=status,
            http_status=http_status,
            ignored=1000,
            created_at=now - timedelta(days=1),
        )

    push(pushed, ImportRequest.Status.APPLIED, 201)
    push(refused, ImportRequest.Status.REJECTED, 400)
    CsvUpload.objects.create(
        cohort_id=uploaded.cohort_id,
        mode=CsvUpload.Mode.ADD,
        file_name="same.csv",
        stored_path="same.csv",
        status=CsvUpload.Status.SUCCEEDED,
        ignored=1000,
        finished_at=now - timedelta(days=2),
    )
    attention = home(viewer_client)[0].context["attention"]
    # Nothing changed for a month, but data arrived: only the feed that is refused is stale.
    assert [s.name for s in attention.stale] == ["Partner pushes refused"]


def test_the_stale_threshold_is_a_setting(viewer_client, settings):
    age_cohort(make_sync(name="Three days quiet"), 3)
    assert home(viewer_client)[0].context["attention"].stale_count == 0
    settings.COHORTSYNC_STALE_COHORT_DAYS = 2
    response, page = home(viewer_client)
    assert response.context["attention"].stale_count == 1
    assert "No new cohort data for 2+ days" in page


def test_a_long_list_shows_the_first_few_and_the_full_count(viewer_client):
    connection = make_connection()
    for n in range(SHOWN + 2):
        make_sync(
            name=f"Broken {n:02d}", connection=connection, last_run_status=SyncRun.Status.FAILED
        )
    response, page = home(viewer_client)
    attention = response.context["attention"]
    assert attention.failed_count == SHOWN + 2
    assert len(attention.failed) == SHOWN
    assert f"{SHOWN + 2} in all" in page


# Every sync


def test_every_sync_shows_its_status_last_run_and_next_run(viewer_client):
    now = timezone.now()
    make_sync(
        name="Hourly one",
        last_run_status=SyncRun.Status.SUCCEEDED,
        last_run_at=now - timedelta(minutes=5),
        last_run_summary="+198 -3",
        next_run_at=now + timedelta(hours=2, minutes=1),
    )
    make_sync(name="Overdue one", next_run_at=now - timedelta(minutes=1))
    make_sync(name="Live one", cadence={"kind": "realtime"})
    make_sync(name="Paused one", status=Sync.Status.PAUSED, next_run_at=now + timedelta(hours=1))
    page = home(viewer_client)[1]
    table = page[page.index('class="home-syncs"') :]
    for text in (
        "Hourly one",
        "Succeeded",
        "+198 -3",
        "5\xa0minutes ago",
        "in 2\xa0hours",
        "due now",
        "on every change",
        "paused",
        "never run",
    ):
        assert text in table, text


def test_more_than_fifty_syncs_are_paged(viewer_client):
    connection = make_connection()
    cohort = Cohort.objects.create(name="Shared", source="manual")
    Sync.objects.bulk_create(
        Sync(name=f"Sync {n:03d}", cohort=cohort, connection=connection, cadence={"kind": "once"})
        for n in range(51)
    )
    first = home(viewer_client)[1]
    assert "Sync 049" in first and "Sync 050" not in first
    assert "Page 1 of 2" in first
    second = viewer_client.get(HOME, {"page": "2"}).content.decode()
    assert "Sync 050" in second and "Sync 049" not in second
    # A page that is not a number shows the first one, not an error.
    assert "Sync 000" in viewer_client.get(HOME, {"page": "x"}).content.decode()


def test_a_fresh_install_says_what_to_set_up_first(admin_client, marketer_client):
    assert reverse("connections:create") in home(admin_client)[1]
    make_connection()
    page = home(marketer_client)[1]
    assert "No syncs yet" in page
    assert reverse("syncs:sync_create") in page


# Members added and removed per day


def test_the_daily_chart_sums_finished_runs_per_day_over_thirty_days(viewer_client):
    sync = make_sync()
    now = timezone.now()
    today = timezone.localdate()
    make_run(sync, status="succeeded", finished_at=now, added=120, removed=3)
    make_run(sync, status="partially_failed", finished_at=now, added=5, failed=2)
    make_run(sync, status="succeeded", finished_at=now - timedelta(days=3), removed=40)
    make_run(sync, status="succeeded", finished_at=now - timedelta(days=31), added=999_999)
    make_run(sync, status=SyncRun.Status.RUNNING, added=77_777)  # not finished: not counted
    response, page = home(viewer_client)
    chart = response.context["chart"]
    titles = {bar.title for bar in chart.bars}
    day = f"{today:%b} {today.day}"
    three_days_ago = today - timedelta(days=3)
    assert titles == {
        f"{day}: 125 added",
        f"{day}: 3 removed",
        f"{three_days_ago:%b} {three_days_ago.day}: 40 removed",
    }
    assert "125 added, 43 removed." in chart.summary
    assert '<figure class="bar-chart" id="daily-changes">' in page
    assert f"<title>{day}: 125 added</title>" in page


def test_with_no_change_in_thirty_days_the_chart_says_so(viewer_client):
    make_run(make_sync(), status="succeeded", finished_at=timezone.now())  # added nothing
    response, page = home(viewer_client)
    assert response.context["chart"] is None
    assert "No run added or removed a member in the last 30 days." in page


def test_the_daily_totals_are_kept_for_a_minute(viewer_client):
    sync = make_sync()
    make_run(sync, status="succeeded", finished_at=timezone.now(), added=10)
    assert home(viewer_client)[0].context["chart"].summary.endswith("10 added, 0 removed.")
    make_run(sync, status="succeeded", finished_at=timezone.now(), added=5)
    assert home(viewer_client)[0].context["chart"].summary.endswith("10 added, 0 removed.")
    cache.clear()  # what the minute running out does
    assert home(viewer_client)[0].context["chart"].summary.endswith("15 added, 0 removed.")
