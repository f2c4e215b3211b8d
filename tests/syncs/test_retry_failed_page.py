"""The run page's "Retry failed members": shown to marketers and admins on a run with failed
members (not one that only skipped some); it starts the retry and the new run's page names the
run it retries. Runs are made through the ORM; the view queues on a real Redis."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from syncs.models import Sync, SyncRun, SyncRunError
from tests.factories import make_run, make_sync

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]

BUTTON = 'id="retry-failed"'


@pytest.fixture
def failed_run(cohort):
    sync = make_sync(cohort=cohort)
    run = make_run(sync, status=SyncRun.Status.PARTIALLY_FAILED, failed=1, planned_adds=1)
    SyncRunError.objects.create(run=run, operation="add", member="external_id:m-1", reason="bad")
    return run


def page(client, run):
    return client.get(reverse("syncs:run_detail", args=[run.sync_id, run.pk])).content.decode()


def retry_url(run):
    return reverse("syncs:run_retry_failed", args=[run.sync_id, run.pk])


def test_marketers_and_admins_see_the_button_on_a_run_with_failures(
    marketer_client, admin_client, viewer_client, failed_run
):
    assert BUTTON in page(marketer_client, failed_run)
    assert BUTTON in page(admin_client, failed_run)
    assert BUTTON not in page(viewer_client, failed_run)


def test_a_run_that_only_skipped_members_has_no_button(marketer_client, cohort):
    run = make_run(make_sync(cohort=cohort), status=SyncRun.Status.SUCCEEDED, skipped=4)
    assert BUTTON not in page(marketer_client, run)


def test_the_button_starts_the_retry_whose_page_names_the_run_it_retries(
    marketer_client, marketer, failed_run
):
    response = marketer_client.post(retry_url(failed_run))
    retry = SyncRun.objects.get(trigger=SyncRun.Trigger.RETRY)
    assert response.status_code == 302
    assert response["Location"] == reverse("syncs:run_detail", args=[failed_run.sync_id, retry.pk])
    assert (retry.retry_of_id, retry.requested_by) == (failed_run.pk, marketer)
    html = page(marketer_client, retry)
    assert "Retry of failed members" in html
    assert "Retries the members that failed in <a href=" in html
    assert f">run {failed_run.pk}</a>" in html


def test_a_viewer_cannot_retry(viewer_client, failed_run):
    assert viewer_client.post(retry_url(failed_run)).status_code == 403
    assert not SyncRun.objects.filter(trigger=SyncRun.Trigger.RETRY).exists()


def test_a_refusal_is_a_message_on_the_run_page_and_starts_nothing(marketer_client, failed_run):
    Sync.objects.filter(pk=failed_run.sync_id).update(status=Sync.Status.PAUSED)
    response = marketer_client.post(retry_url(failed_run))
    assert response["Location"] == reverse(
        "syncs:run_detail", args=[failed_run.sync_id, failed_run.pk]
    )
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "is paused: resume it before retrying" in message
    assert SyncRun.objects.count() == 1


def test_a_paused_syncs_run_says_to_resume_it_instead_of_offering_the_button(
    marketer_client, failed_run
):
    Sync.objects.filter(pk=failed_run.sync_id).update(status=Sync.Status.PAUSED)
    html = page(marketer_client, failed_run)
    assert BUTTON not in html
    assert "is paused: resume it to retry the members that failed here." in html
