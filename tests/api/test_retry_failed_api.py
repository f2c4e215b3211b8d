"""POST /syncs/{id}/runs/{run_id}/retry-failed: marketers and admins start a run of the failed
members (202); refusals are 400 and change nothing; other roles are refused."""

import pytest

from core.models import AuditEntry
from syncs.models import Sync, SyncRun
from tests.factories import make_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


@pytest.fixture
def failed_run(sync):
    return make_run(sync, status=SyncRun.Status.PARTIALLY_FAILED, failed=3, planned_adds=5)


def path(run):
    return f"/syncs/{run.sync_id}/runs/{run.pk}/retry-failed"


def snapshot():
    return SyncRun.objects.count(), AuditEntry.objects.count()


def test_a_marketer_starts_a_retry_of_the_failed_members(marketer_api, marketer, failed_run):
    response = marketer_api.post(path(failed_run))
    assert response.status_code == 202
    body = response.json()
    retry = SyncRun.objects.get(pk=body["id"])
    assert (body["trigger"], body["retry_of"], body["status"]) == ("retry", failed_run.pk, "queued")
    assert retry.retry_of_id == failed_run.pk
    assert AuditEntry.objects.get(action="sync.run_requested").actor == marketer
    # Read back, the retry run names its run in the list and the detail alike.
    assert marketer_api.get(f"/syncs/{retry.sync_id}/runs/{retry.pk}").json()["retry_of"] == (
        failed_run.pk
    )
    listed = marketer_api.get(f"/syncs/{retry.sync_id}/runs").json()["items"]
    assert [item["retry_of"] for item in listed] == [failed_run.pk, None]


def test_a_viewer_is_refused(viewer_api, failed_run):
    before = snapshot()
    assert viewer_api.post(path(failed_run)).status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sync_status": Sync.Status.PAUSED}, "is paused: resume it before retrying"),
        ({"sync_status": Sync.Status.NEEDS_ATTENTION}, "needs attention"),
        ({"going": SyncRun.Status.RUNNING}, "is running: retry once it has ended"),
        ({"failed": 0}, "has no failed members to retry"),
    ],
)
def test_refusals_are_400_and_change_nothing(marketer_api, failed_run, change, message):
    if "sync_status" in change:
        Sync.objects.filter(pk=failed_run.sync_id).update(status=change["sync_status"])
    if "going" in change:
        make_run(failed_run.sync, status=change["going"])
    if "failed" in change:
        SyncRun.objects.filter(pk=failed_run.pk).update(failed=0, skipped=3)
    before = snapshot()
    response = marketer_api.post(path(failed_run))
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert snapshot() == before


def test_a_run_of_another_sync_is_not_found(marketer_api, failed_run, cohort):
    assert (
        marketer_api.post(
            f"/syncs/{failed_run.sync_id + 1}/runs/{failed_run.pk}/retry-failed"
        ).status_code
        == 404
    )
