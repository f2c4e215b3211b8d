"""Security issue #13, finding 4: the logs that grow with traffic are kept for a number of days
(settings), and a daily job on the `default` queue deletes older rows in bounded batches."""

import importlib
from datetime import timedelta
from unittest import mock

import django_rq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import AlertDelivery
from cohorts.models import AmplitudeBatch, ImportRequest, RefusedImportCount
from cohortsync.jobs import purge_expired_records
from cohortsync.retention import POLICIES, purge_expired
from core.retention import delete_in_batches
from syncs.models import SyncRun, SyncRunEvent, SyncRunExchange
from tests.factories import make_run, make_sync
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db

NOW = timezone.now()
OLD = NOW - timedelta(days=91)
RECENT = NOW - timedelta(days=89)


def import_request(at):
    return ImportRequest.objects.create(
        created_at=at, partner="amplitude", endpoint="cohorts", status="applied", http_status=201
    )


def refused_count(at):
    return RefusedImportCount.objects.create(
        partner="amplitude", reason="unknown_key", minute=at.replace(second=0, microsecond=0)
    )


def delivery(at, status=AlertDelivery.Status.SENT):
    return AlertDelivery.objects.create(
        channel="email", event="test", title="t", text="t", status=status, created_at=at
    )


def events(run, at, n=3):
    SyncRunEvent.objects.bulk_create(
        SyncRunEvent(run=run, at=at, kind=SyncRunEvent.Kind.BATCH) for _ in range(n)
    )


@pytest.fixture
def sync():
    return make_sync()


def exchanges(run, at, n=2):
    SyncRunExchange.objects.bulk_create(
        SyncRunExchange(run=run, at=at, batch=1, attempt=1, method="POST", path="/users/track")
        for _ in range(n)
    )


def test_the_defaults_keep_ninety_days_and_a_runs_requests_thirty(settings):
    assert {policy.setting: getattr(settings, policy.setting) for policy in POLICIES} == {
        "COHORTSYNC_RETENTION_DAYS_IMPORT_REQUESTS": 90,
        "COHORTSYNC_RETENTION_DAYS_REFUSED_COUNTS": 90,
        "COHORTSYNC_RETENTION_DAYS_RUN_EVENTS": 90,
        # They hold a sample of members' identifiers: kept for debugging, not for history.
        "COHORTSYNC_RETENTION_DAYS_RUN_EXCHANGES": 30,
        "COHORTSYNC_RETENTION_DAYS_AMPLITUDE_BATCHES": 90,
        "COHORTSYNC_RETENTION_DAYS_ALERT_DELIVERIES": 90,
    }


def test_rows_past_their_retention_go_and_the_rest_stay(sync, settings):
    settings.COHORTSYNC_RETENTION_DAYS_RUN_EXCHANGES = 90  # aged as the timeline is, here
    kept_request, _ = import_request(RECENT), import_request(OLD)
    kept_count, _ = refused_count(RECENT), refused_count(OLD)
    kept_delivery, _ = delivery(RECENT), delivery(OLD, status=AlertDelivery.Status.FAILED)
    old_run = make_run(sync, finished_at=OLD)
    recent_run = make_run(sync, finished_at=RECENT)
    events(old_run, OLD)
    events(recent_run, OLD)  # a long-held run that finished recently keeps its whole timeline
    events(recent_run, RECENT)
    exchanges(old_run, OLD)
    exchanges(recent_run, OLD)  # like its timeline: kept while its run finished recently
    exchanges(recent_run, RECENT)

    deleted = purge_expired(now=NOW)

    assert deleted == {
        "import_requests": 1,
        "refused_counts": 1,
        "run_events": 3,
        "run_exchanges": 2,
        "amplitude_batches": 0,
        "alert_deliveries": 1,
    }
    assert list(ImportRequest.objects.all()) == [kept_request]
    assert list(RefusedImportCount.objects.all()) == [kept_count]
    assert list(AlertDelivery.objects.all()) == [kept_delivery]
    assert set(SyncRunEvent.objects.values_list("run_id", flat=True)) == {recent_run.pk}
    assert SyncRunEvent.objects.count() == 6
    assert set(SyncRunExchange.objects.values_list("run_id", flat=True)) == {recent_run.pk}
    # A run keeps its row, counts and summary: only its timeline and its exchanges went.
    assert SyncRun.objects.filter(pk=old_run.pk).exists()


def amplitude_batch(cohort, at, status):
    return AmplitudeBatch.objects.create(
        message_id=f"m-{AmplitudeBatch.objects.count()}",
        cohort=cohort,
        cohort_name=cohort.name,
        in_cohort=True,
        computed_at=at,
        status=status,
        created_at=at,
    )


def test_old_amplitude_batches_go_unless_still_queued(sync):
    Status = AmplitudeBatch.Status
    cohort = sync.cohort
    kept = [
        amplitude_batch(cohort, RECENT, Status.APPLIED),
        amplitude_batch(cohort, OLD, Status.QUEUED),  # not applied yet: a worker still needs it
    ]
    amplitude_batch(cohort, OLD, Status.APPLIED)
    amplitude_batch(cohort, OLD, Status.FAILED)

    assert purge_expired(now=NOW)["amplitude_batches"] == 2
    assert set(AmplitudeBatch.objects.all()) == set(kept)


def test_a_run_that_has_not_finished_keeps_its_timeline_however_old(sync):
    held = make_run(sync, status=SyncRun.Status.HELD)
    events(held, OLD)
    exchanges(held, OLD)
    deleted = purge_expired(now=NOW)
    assert (deleted["run_events"], deleted["run_exchanges"]) == (0, 0)
    assert SyncRunEvent.objects.filter(run=held).count() == 3
    assert SyncRunExchange.objects.filter(run=held).count() == 2


def test_a_runs_requests_and_answers_go_after_thirty_days(sync):
    run = make_run(sync, finished_at=NOW - timedelta(days=31))
    events(run, NOW - timedelta(days=31))
    exchanges(run, NOW - timedelta(days=31))
    deleted = purge_expired(now=NOW)
    assert (deleted["run_events"], deleted["run_exchanges"]) == (0, 2)
    assert SyncRunEvent.objects.filter(run=run).count() == 3


def test_each_setting_sets_its_own_days_and_zero_keeps_for_ever(settings):
    import_request(NOW - timedelta(days=10))
    refused_count(NOW - timedelta(days=10))
    settings.COHORTSYNC_RETENTION_DAYS_IMPORT_REQUESTS = 7
    settings.COHORTSYNC_RETENTION_DAYS_REFUSED_COUNTS = 0
    deleted = purge_expired(now=NOW)
    assert deleted["import_requests"] == 1
    assert "refused_counts" not in deleted
    assert RefusedImportCount.objects.count() == 1


def test_deletes_in_bounded_batches_each_its_own_statement():
    for _ in range(7):
        import_request(OLD)
    with CaptureQueriesContext(connection) as queries:
        assert (
            delete_in_batches(ImportRequest.objects.filter(created_at__lt=NOW), batch_size=3) == 7
        )
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 3 + 3 + 1
    assert not ImportRequest.objects.exists()


def test_a_purge_stops_at_its_deadline_and_the_rest_waits_for_the_next_day():
    for _ in range(5):
        import_request(OLD)
    assert purge_expired(now=NOW, batch_size=2, time_budget=0)["import_requests"] == 2
    assert ImportRequest.objects.count() == 3
    assert purge_expired(now=NOW, batch_size=2)["import_requests"] == 3


def test_the_job_runs_on_the_default_queue(rq_redis, django_capture_on_commit_callbacks):
    import_request(OLD)
    import_request(timezone.now())
    with django_capture_on_commit_callbacks(execute=True):  # queued once the caller commits
        django_rq.get_queue("default").enqueue(purge_expired_records)
    assert run_jobs("default")
    assert ImportRequest.objects.count() == 1


def test_rqcron_runs_the_purge_daily_on_the_default_queue():
    import cohortsync.cron

    with mock.patch("rq.cron.register") as register:
        importlib.reload(cohortsync.cron)
    [call] = [c for c in register.call_args_list if c.kwargs.get("name") == "purge_expired_records"]
    assert call.args[0] is purge_expired_records
    assert call.kwargs["queue_name"] == "default"
    minute, hour, *every_day = call.kwargs["cron"].split()
    assert minute.isdigit() and hour.isdigit() and every_day == ["*", "*", "*"]
