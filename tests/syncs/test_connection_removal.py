"""Deleting a connection its syncs use: leave their members in the destination, or remove
them with a cleanup run per sync and delete the connection when the last one is done."""

import pytest
import requests
from django.urls import reverse

from connections.models import Connection
from core.models import AuditEntry
from syncs.connection_removal import LEAVE, REMOVE, remove_connection
from syncs.models import Sync, SyncedMember, SyncRun
from syncs.services import start_run
from tests.factories import make_cohort, make_sync
from tests.jobs import run_jobs, run_jobs_and_commit_hooks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


def synced(connection, name, members):
    cohort = make_cohort(name=name, members=[f"{name}-{n}" for n in range(members)])
    sync = make_sync(name=f"{name} → Braze", cohort=cohort, connection=connection, cadence="hourly")
    start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    return sync


def in_braze(sandbox, cohort_name, value):
    response = requests.get(f"{sandbox.url}/_sandbox/braze/profiles/external_id:{value}", timeout=5)
    if response.status_code == 404:
        return False
    return cohort_name in (response.json()["attributes"].get("cohortsync_cohorts") or [])


def test_leave_deletes_the_connection_and_its_syncs_and_leaves_the_destination(
    connection, sandbox, admin_user
):
    sync = synced(connection, "churn", 10)
    assert remove_connection(connection=connection, cleanup=LEAVE, actor=admin_user) is True
    assert not Connection.objects.filter(pk=connection.pk).exists()
    assert not Sync.objects.filter(pk=sync.pk).exists()
    assert in_braze(sandbox, "churn", "churn-3")
    entry = AuditEntry.objects.get(action="sync.deleted")
    assert entry.details["left_in_destination"] == 10
    assert AuditEntry.objects.filter(action="connection.deleted", actor=admin_user).exists()


def test_remove_runs_a_cleanup_per_sync_then_deletes_the_connection(
    connection, sandbox, admin_user, django_capture_on_commit_callbacks
):
    first, second = synced(connection, "churn", 80), synced(connection, "vip", 5)
    empty = make_sync(name="empty → Braze", cohort=make_cohort(name="empty"), connection=connection)

    assert remove_connection(connection=connection, cleanup=REMOVE, actor=admin_user) is False
    connection.refresh_from_db()
    assert connection.deletion_requested_at is not None
    assert set(Sync.objects.values_list("status", flat=True)) == {Sync.Status.PAUSED}
    cleanups = SyncRun.objects.filter(trigger=SyncRun.Trigger.CLEANUP)
    assert set(cleanups.values_list("sync_id", flat=True)) == {first.pk, second.pk}
    assert empty.pk not in cleanups.values_list("sync_id", flat=True)

    run_jobs_and_commit_hooks(django_capture_on_commit_callbacks)
    assert not Connection.objects.filter(pk=connection.pk).exists()
    assert not Sync.objects.exists()
    assert not in_braze(sandbox, "churn", "churn-42")
    assert not in_braze(sandbox, "vip", "vip-1")


def test_a_failed_cleanup_keeps_the_connection_until_someone_decides(
    connection, sandbox, admin_user, django_capture_on_commit_callbacks
):
    sync = synced(connection, "churn", 10)
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"partner": "braze", "statuses": [400]},
        timeout=5,
    ).raise_for_status()
    remove_connection(connection=connection, cleanup=REMOVE, actor=admin_user)
    run_jobs_and_commit_hooks(django_capture_on_commit_callbacks)
    cleanup = SyncRun.objects.get(trigger=SyncRun.Trigger.CLEANUP)
    assert cleanup.status == SyncRun.Status.FAILED
    assert Connection.objects.filter(pk=connection.pk).exists()
    assert SyncedMember.objects.filter(sync=sync).count() == 10
    # Trying again finishes the job.
    assert remove_connection(connection=connection, cleanup=REMOVE, actor=admin_user) is False
    run_jobs_and_commit_hooks(django_capture_on_commit_callbacks)
    assert not Connection.objects.filter(pk=connection.pk).exists()


def test_leave_is_refused_while_a_run_is_going(connection, admin_user):
    sync = synced(connection, "churn", 3)
    start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="in progress"):
        remove_connection(connection=connection, cleanup=LEAVE, actor=admin_user)
    assert Connection.objects.filter(pk=connection.pk).exists()
    assert Sync.objects.filter(pk=sync.pk).exists()


def test_the_delete_page_asks_and_shows_the_cleanup(connection, admin_client):
    synced(connection, "churn", 4)
    url = reverse("connection_delete", args=[connection.pk])
    page = admin_client.get(url).content.decode()
    assert "churn → Braze (churn): 4 members in Braze" in page
    # With syncs, the choice is required; nothing changes without it.
    response = admin_client.post(url, {"confirm_name": "Braze sandbox"})
    assert "Choose what happens" in response.content.decode()
    assert Connection.objects.get(pk=connection.pk).deletion_requested_at is None

    response = admin_client.post(url, {"confirm_name": "Braze sandbox", "cleanup": REMOVE})
    assert response.status_code == 302
    page = admin_client.get(url).content.decode()
    assert "Deletion asked" in page and "Queued" in page
    # The progress only, read again until it ends: not the delete form a second time.
    assert 'data-state="removing"' in page and 'hx-trigger="every 3s"' in page
    assert 'name="confirm_name"' not in page and "Delete connection" not in page
    detail = admin_client.get(reverse("connections:detail", args=[connection.pk]))
    assert "is being deleted" in detail.content.decode()

    cancel = reverse("connection_delete_cancel", args=[connection.pk])
    assert admin_client.post(cancel).status_code == 302
    assert Connection.objects.get(pk=connection.pk).deletion_requested_at is None


def test_the_delete_page_says_sent_where_the_partner_may_not_have_applied_the_adds(
    connection, admin_client
):
    sync = synced(connection, "churn", 4)
    url = reverse("connection_delete", args=[connection.pk])
    # Braze with "update existing only" accepts adds for unknown profiles and drops them.
    SyncRun.objects.filter(sync=sync).update(adds_applied=False)
    page = admin_client.get(url).content.decode()
    assert "churn → Braze (churn): 4 members sent to Braze <span" in page
    assert "members in Braze" not in page
    # Some applied, some only sent: both said.
    applied_run = SyncRun.objects.create(sync=sync, status="succeeded", trigger="manual")
    SyncedMember.objects.filter(pk__in=SyncedMember.objects.values("pk")[:3]).update(
        run=applied_run
    )
    page = admin_client.get(url).content.decode()
    assert "4 members sent to Braze, 3 of them in it" in page


def test_a_removal_that_stopped_short_offers_the_form_again(
    connection, sandbox, admin_client, django_capture_on_commit_callbacks
):
    synced(connection, "churn", 3)
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"partner": "braze", "statuses": [400]},
        timeout=5,
    ).raise_for_status()
    url = reverse("connection_delete", args=[connection.pk])
    admin_client.post(url, {"confirm_name": "Braze sandbox", "cleanup": REMOVE})
    run_jobs_and_commit_hooks(django_capture_on_commit_callbacks)
    page = admin_client.get(url).content.decode()
    assert 'data-state="stopped"' in page and "every 3s" not in page
    assert "The removal stopped short" in page and 'name="confirm_name"' in page
    assert '<span class="badge failed">Failed</span>' in page


def test_the_progress_says_the_connection_is_deleted_once_it_is(
    connection, admin_client, django_capture_on_commit_callbacks
):
    synced(connection, "churn", 3)
    url = reverse("connection_delete", args=[connection.pk])
    admin_client.post(url, {"confirm_name": "Braze sandbox", "cleanup": REMOVE})
    run_jobs_and_commit_hooks(django_capture_on_commit_callbacks)
    assert not Connection.objects.filter(pk=connection.pk).exists()
    poll = admin_client.get(url, HTTP_HX_REQUEST="true")
    assert poll.status_code == 200
    assert 'data-state="deleted"' in poll.content.decode()
    assert "every 3s" not in poll.content.decode()  # the polling stops here
    assert admin_client.get(url).status_code == 404  # outside the live page, as before


def test_roles_for_the_delete_page(connection, marketer_client, viewer_client, outsider_client):
    url = reverse("connection_delete", args=[connection.pk])
    assert outsider_client.get(url).status_code == 404
    assert viewer_client.get(url).status_code == 403
    assert marketer_client.post(url, {"confirm_name": "Braze sandbox"}).status_code == 403
    cancel = reverse("connection_delete_cancel", args=[connection.pk])
    assert marketer_client.post(cancel).status_code == 403
    assert Connection.objects.filter(pk=connection.pk).exists()
