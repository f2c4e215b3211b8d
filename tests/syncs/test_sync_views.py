"""The sync pages: list, creation form, a sync's page with Run now, a run's page and its live
progress partial. Runs and their errors are made through the ORM; Run now uses a real Redis."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cohorts.models import Cohort
from syncs.models import Sync, SyncRun, SyncRunError
from tests.base import make_connection
from tests.factories import make_run, make_sync

pytestmark = pytest.mark.django_db


def flashes(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def _urls(sync, run):
    return {
        "list": ("get", reverse("syncs:sync_list")),
        "create": ("get", reverse("syncs:sync_create")),
        "detail": ("get", reverse("syncs:sync_detail", args=[sync.pk])),
        "run_now": ("post", reverse("syncs:sync_run_now", args=[sync.pk])),
        "run": ("get", reverse("syncs:run_detail", args=[sync.pk, run.pk])),
        "progress": ("get", reverse("syncs:run_progress", args=[sync.pk, run.pk])),
    }


READ = {"list", "detail", "run", "progress"}


@pytest.fixture
def sync():
    return make_sync()


@pytest.fixture
def finished_run(sync):
    return make_run(sync, status=SyncRun.Status.SUCCEEDED, finished_at=timezone.now())


# Access


def test_every_sync_page_requires_login(client, sync, finished_run):
    for name, (method, url) in _urls(sync, finished_run).items():
        response = getattr(client, method)(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login")), name


def test_outsiders_get_404_on_every_sync_page(outsider_client, sync, finished_run):
    for name, (method, url) in _urls(sync, finished_run).items():
        assert getattr(outsider_client, method)(url).status_code == 404, name


def test_viewers_read_syncs_but_cannot_create_or_run_them(viewer_client, sync, finished_run):
    for name, (method, url) in _urls(sync, finished_run).items():
        expected = 200 if name in READ else 403
        assert getattr(viewer_client, method)(url).status_code == expected, name
    viewer_client.post(reverse("syncs:sync_create"), {"name": "Sneaky"})
    assert Sync.objects.count() == 1
    assert SyncRun.objects.count() == 1
    page = viewer_client.get(reverse("syncs:sync_detail", args=[sync.pk])).content.decode()
    assert 'id="run-now"' not in page
    assert "New sync" not in viewer_client.get(reverse("syncs:sync_list")).content.decode()


@pytest.mark.parametrize("who", ["marketer_client", "admin_client"])
def test_marketers_and_admins_open_every_sync_page(request, who, sync, finished_run):
    client = request.getfixturevalue(who)
    for name, (method, url) in _urls(sync, finished_run).items():
        if method == "get":
            assert client.get(url).status_code == 200, name
    assert "New sync" in client.get(reverse("syncs:sync_list")).content.decode()


def test_run_now_answers_only_post(marketer_client, sync):
    url = reverse("syncs:sync_run_now", args=[sync.pk])
    assert marketer_client.get(url).status_code == 405
    assert not SyncRun.objects.exists()


def test_a_run_of_another_sync_is_not_found(viewer_client, sync):
    other_run = make_run(make_sync(name="Other"), status=SyncRun.Status.QUEUED)
    for name in ("run_detail", "run_progress"):
        url = reverse(f"syncs:{name}", args=[sync.pk, other_run.pk])
        assert viewer_client.get(url).status_code == 404, name


# The list


def test_the_list_shows_each_sync_with_its_cadence_and_last_run(viewer_client, sync):
    Sync.objects.filter(pk=sync.pk).update(
        last_run_status=SyncRun.Status.PARTIALLY_FAILED,
        last_run_at=timezone.now() - timedelta(minutes=5),
        last_run_summary="+198 -0, 2 failed",
    )
    page = viewer_client.get(reverse("syncs:sync_list")).content.decode()
    assert sync.name in page
    assert reverse("cohorts:cohort_detail", args=[sync.cohort_id]) in page
    assert reverse("connections:detail", args=[sync.connection_id]) in page
    assert "Once" in page
    assert "Partially failed" in page
    assert "+198 -0, 2 failed" in page
    assert "5\xa0minutes ago" in page


def test_the_list_costs_the_same_queries_for_2_and_20_syncs(viewer_client):
    connection = make_connection()

    def add_syncs(count):
        for _ in range(count):
            make_sync(name=f"Sync {Sync.objects.count():03d}", connection=connection)

    def queries():
        with CaptureQueriesContext(db) as captured:
            assert viewer_client.get(reverse("syncs:sync_list")).status_code == 200
        return len(captured)

    add_syncs(2)
    with_two = queries()
    add_syncs(18)
    assert queries() == with_two


# Creating a sync (its steps, the preview and editing: tests/syncs/test_sync_wizard.py)


@pytest.fixture
def form_data():
    cohort = Cohort.objects.create(name="Churn risk", source="manual")
    connection = make_connection(name="Braze prod")
    return {
        "name": "Churn → Braze",
        "cohort": cohort.pk,
        "connection": connection.pk,
        "primary_identifier": "external_id",
        "fallback_identifier": "braze_id",
        "cadence": "once",
        "leaving_members": "remove",
        "mass_removal_threshold_pct": "50",
    }


def test_a_daily_sync_is_scheduled_in_its_time_zone(marketer_client, form_data):
    data = {**form_data, "cadence": "daily", "daily_time": "09:30", "timezone": "Europe/Paris"}
    response = marketer_client.post(reverse("syncs:sync_create"), data)
    assert response.status_code == 302
    sync = Sync.objects.get()
    assert sync.cadence == {"kind": "daily", "time_of_day": "09:30", "timezone": "Europe/Paris"}
    assert sync.next_run_at is not None


def test_a_daily_sync_without_its_time_is_refused(marketer_client, form_data):
    response = marketer_client.post(reverse("syncs:sync_create"), {**form_data, "cadence": "daily"})
    assert "needs its time of day" in response.content.decode()
    assert "daily_time" in response.context["form"].errors
    assert not Sync.objects.exists()


def test_an_unknown_time_zone_is_refused_and_nothing_is_saved(marketer_client, form_data):
    data = {**form_data, "cadence": "daily", "daily_time": "09:30", "timezone": "Mars/Base"}
    response = marketer_client.post(reverse("syncs:sync_create"), data)
    assert response.status_code == 200
    assert "Mars/Base" in response.content.decode()
    assert not Sync.objects.exists()


@pytest.mark.parametrize("who", ["marketer", "admin_user"])
def test_creating_a_sync_saves_it_and_goes_to_its_page(request, who, form_data, client):
    user = request.getfixturevalue(who)
    client.force_login(user)
    response = client.post(reverse("syncs:sync_create"), form_data)
    sync = Sync.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("syncs:sync_detail", args=[sync.pk])
    assert sync.identifier_mapping == ["external_id", "braze_id"]
    assert sync.cadence == {"kind": "once"}
    assert (sync.leaving_members, sync.mass_removal_threshold_pct) == ("remove", 50)
    assert sync.created_by == user


def test_an_appsflyer_sync_is_created_with_an_audience_to_make_on_its_first_run(
    marketer_client, form_data
):
    form_data.update(
        connection=make_connection("appsflyer", name="AF android").pk,
        primary_identifier="gaid",
        fallback_identifier="external_id",
    )
    response = marketer_client.post(reverse("syncs:sync_create"), form_data)
    assert response.status_code == 302
    sync = Sync.objects.get()
    assert sync.identifier_mapping == ["gaid", "external_id"]
    assert "import_key" not in sync.options
    assert len(sync.options["audience_suffix"]) == 6


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "This field is required."),
        ("name", "x" * 256, "at most 255 characters"),
        ("cohort", "999999", "Select a valid choice."),
        ("connection", "", "This field is required."),
        ("primary_identifier", "nonsense", "Select a valid choice."),
        ("primary_identifier", "idfa", "IDFA (iOS advertising ID) is not available"),
        ("fallback_identifier", "external_id", "Choose a different fallback, or none."),
        ("cadence", "weekly", "Select a valid choice"),
        ("leaving_members", "forget", "Select a valid choice."),
        ("mass_removal_threshold_pct", "0", "greater than or equal to 1"),
        ("mass_removal_threshold_pct", "101", "less than or equal to 100"),
        ("mass_removal_threshold_pct", "half", "Enter a whole number."),
    ],
)
def test_each_invalid_field_is_shown_with_its_error_and_creates_nothing(
    marketer_client, form_data, field, value, message
):
    form_data[field] = value
    response = marketer_client.post(reverse("syncs:sync_create"), form_data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert field in response.context["form"].errors
    assert not Sync.objects.exists()


# Run now


def test_run_now_queues_one_run_and_a_second_click_queues_none(marketer_client, sync, rq_redis):
    url = reverse("syncs:sync_run_now", args=[sync.pk])
    first = marketer_client.post(url)
    assert first["Location"] == reverse("syncs:sync_detail", args=[sync.pk])
    run = SyncRun.objects.get()
    assert (run.status, run.trigger) == (SyncRun.Status.QUEUED, SyncRun.Trigger.MANUAL)
    assert flashes(first) == []  # the run's live card says it is queued, and then what next
    page = marketer_client.get(first["Location"]).content.decode()
    assert 'data-status="queued"' in page and "Waiting for a worker" in page

    second = marketer_client.post(url)
    assert second.status_code == 302
    assert SyncRun.objects.count() == 1
    [message] = flashes(second)
    assert f"run {run.pk} was queued already" in message
    assert reverse("syncs:run_detail", args=[sync.pk, run.pk]) in message


def test_a_run_whose_job_waits_for_redis_says_so_on_its_card_only_while_it_waits(
    marketer_client, sync, settings
):
    from syncs.services import QUEUE_UNREACHABLE
    from tests.queues import queues_at

    settings.RQ_QUEUES = queues_at("redis://127.0.0.1:1/0", timeout=5)
    response = marketer_client.post(reverse("syncs:sync_run_now", args=[sync.pk]))
    assert flashes(response) == []  # a message would stay once Redis is back and the run ends
    run = SyncRun.objects.get()
    page = marketer_client.get(reverse("syncs:sync_detail", args=[sync.pk])).content.decode()
    assert QUEUE_UNREACHABLE in page
    progress = reverse("syncs:run_progress", args=[sync.pk, run.pk])
    assert QUEUE_UNREACHABLE in marketer_client.get(progress).content.decode()
    SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.RUNNING)
    assert QUEUE_UNREACHABLE not in marketer_client.get(progress).content.decode()


def test_the_sync_page_shows_the_unfinished_run_live_and_the_history(viewer_client, sync):
    make_run(
        sync,
        status=SyncRun.Status.SUCCEEDED,
        queued_at=timezone.now() - timedelta(hours=1),
        started_at=timezone.now() - timedelta(hours=1),
        finished_at=timezone.now() - timedelta(hours=1) + timedelta(seconds=42),
        planned_adds=7,
        added=7,
        requests=1,
    )
    make_run(sync, status=SyncRun.Status.RUNNING, started_at=timezone.now(), planned_adds=10)
    page = viewer_client.get(reverse("syncs:sync_detail", args=[sync.pk])).content.decode()
    assert 'id="run-progress"' in page
    assert 'data-status="running"' in page
    assert "42 s" in page
    assert page.count('class="badge succeeded"') == 1


def test_the_sync_page_has_no_progress_once_the_latest_run_finished(viewer_client, finished_run):
    page = viewer_client.get(
        reverse("syncs:sync_detail", args=[finished_run.sync_id])
    ).content.decode()
    assert 'id="run-progress"' not in page


# The run page


def test_the_run_page_shows_counts_that_add_up_and_errors_grouped_by_reason(viewer_client, sync):
    now = timezone.now()
    run = make_run(
        sync,
        status=SyncRun.Status.PARTIALLY_FAILED,
        started_at=now - timedelta(seconds=90),
        finished_at=now,
        planned_adds=16,
        planned_removes=2,
        added=6,
        removed=2,
        failed=8,
        skipped=2,
        requests=3,
        retries=1,
        throttled_seconds=2.5,
    )
    SyncRunError.objects.bulk_create(
        [
            SyncRunError(
                run=run,
                operation="add",
                member=f"external_id:bad-{n}",
                reason="Invalid alias",
                partner_status=400,
            )
            for n in range(8)
        ]
        + [
            SyncRunError(
                run=run,
                operation="add",
                member=f"device_id:d{n}",
                reason="No usable identifier (external_id)",
            )
            for n in range(2)
        ]
    )
    response = viewer_client.get(reverse("syncs:run_detail", args=[sync.pk, run.pk]))
    page = response.content.decode()
    assert "Planned 18 = 6 added + 2 removed + 8 failed + 2 skipped" in page
    assert "do not add up" not in page
    assert "1 min 30 s" in page
    assert "2.5 s" in page
    [invalid, unusable] = response.context["error_groups"]
    assert (invalid.reason, invalid.count, invalid.partner_statuses) == ("Invalid alias", 8, [400])
    assert invalid.samples == [f"external_id:bad-{n}" for n in range(5)]
    assert (unusable.count, unusable.partner_statuses) == (2, [])
    assert "external_id:bad-5" not in page


def test_the_run_page_costs_one_sample_query_per_reason(viewer_client, sync):
    run = make_run(sync, status=SyncRun.Status.FAILED, finished_at=timezone.now())

    def queries():
        with CaptureQueriesContext(db) as captured:
            viewer_client.get(reverse("syncs:run_detail", args=[sync.pk, run.pk]))
        return len(captured)

    SyncRunError.objects.create(run=run, operation="add", member="a", reason="r1")
    one_reason = queries()
    SyncRunError.objects.bulk_create(
        [SyncRunError(run=run, operation="add", member="b", reason="r2") for _ in range(30)]
    )
    assert queries() == one_reason + 1


def test_the_run_page_says_when_counts_do_not_add_up(viewer_client, sync):
    run = make_run(
        sync, status=SyncRun.Status.SUCCEEDED, finished_at=timezone.now(), planned_adds=5, added=4
    )
    page = viewer_client.get(reverse("syncs:run_detail", args=[sync.pk, run.pk])).content.decode()
    assert "do not add up" in page


# The progress partial


def progress_of(client, run):
    return client.get(reverse("syncs:run_progress", args=[run.sync_id, run.pk]))


def test_the_progress_partial_polls_while_the_run_is_running(viewer_client, sync):
    run = make_run(
        sync,
        status=SyncRun.Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=10),
        planned_adds=400,
        added=100,
    )
    page = progress_of(viewer_client, run).content.decode()
    assert 'hx-get="' + reverse("syncs:run_progress", args=[sync.pk, run.pk]) in page
    assert 'hx-trigger="load delay:1s"' in page
    assert 'value="25"' in page
    assert "members/s" in page
    assert "<html" not in page  # a fragment, not a page


def test_a_queued_run_with_nothing_planned_shows_an_indeterminate_bar(viewer_client, sync):
    page = progress_of(viewer_client, make_run(sync, status=SyncRun.Status.QUEUED)).content.decode()

    assert "hx-get" in page
    assert 'data-status="queued"' in page
    assert '<progress class="full-width" aria-label="Run progress">' in page  # no value


def test_the_progress_partial_stops_polling_and_shows_the_outcome_when_finished(
    viewer_client, sync
):
    run = make_run(
        sync,
        status=SyncRun.Status.SUCCEEDED,
        started_at=timezone.now() - timedelta(seconds=3),
        finished_at=timezone.now(),
        planned_adds=300,
        added=300,
    )
    page = progress_of(viewer_client, run).content.decode()
    assert "hx-get" not in page
    assert 'data-status="succeeded"' in page
    assert '<dd class="added">300</dd>' in page
