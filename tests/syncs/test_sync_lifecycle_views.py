"""The lifecycle pages and buttons: pause, resume, cancel, approve, reject, full resync, delete.
Runs are made through the ORM; the views that queue a run use a real Redis."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from cohorts.membership import Identity, apply_changes
from connections.models import Connection
from syncs.models import Sync, SyncedMember, SyncRun
from tests.factories import make_run, make_sync

pytestmark = pytest.mark.django_db

Status = SyncRun.Status


@pytest.fixture
def sync(cohort):
    return make_sync(cohort=cohort)


def add_ledger(sync, values):
    SyncedMember.objects.bulk_create(
        SyncedMember(
            sync=sync, id_type="external_id", value=v, dest_type="external_id", dest_value=v
        )
        for v in values
    )


def flashes(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def _actions(sync, run):
    """Every lifecycle view: (method, url)."""
    return {
        "pause": ("post", reverse("syncs:sync_pause", args=[sync.pk])),
        "resume": ("post", reverse("syncs:sync_resume", args=[sync.pk])),
        "resync_page": ("get", reverse("syncs:sync_resync", args=[sync.pk])),
        "resync": ("post", reverse("syncs:sync_resync", args=[sync.pk])),
        "delete_page": ("get", reverse("syncs:sync_delete", args=[sync.pk])),
        "delete": ("post", reverse("syncs:sync_delete", args=[sync.pk])),
        "cancel": ("post", reverse("syncs:run_cancel", args=[sync.pk, run.pk])),
        "approve": ("post", reverse("syncs:run_approve", args=[sync.pk, run.pk])),
        "reject": ("post", reverse("syncs:run_reject", args=[sync.pk, run.pk])),
    }


# Access


def test_every_lifecycle_view_requires_login(client, sync):
    run = make_run(sync, status=Status.HELD)
    for name, (method, url) in _actions(sync, run).items():
        response = getattr(client, method)(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login")), name


def test_outsiders_get_404_on_every_lifecycle_view(outsider_client, sync):
    run = make_run(sync, status=Status.HELD)
    for name, (method, url) in _actions(sync, run).items():
        assert getattr(outsider_client, method)(url).status_code == 404, name


def test_viewers_get_403_and_change_nothing(viewer_client, sync):
    run = make_run(sync, status=Status.HELD)
    for name, (method, url) in _actions(sync, run).items():
        assert getattr(viewer_client, method)(url).status_code == 403, name
    run.refresh_from_db()
    assert run.status == Status.HELD
    assert Sync.objects.get(pk=sync.pk).status == Sync.Status.ACTIVE


def test_viewers_see_no_lifecycle_button(viewer_client, sync):
    run = make_run(sync, status=Status.HELD)
    page = viewer_client.get(reverse("syncs:sync_detail", args=[sync.pk])).content.decode()
    for button in ('id="pause"', 'id="resync"', 'id="delete"'):
        assert button not in page
    page = viewer_client.get(reverse("syncs:run_detail", args=[sync.pk, run.pk])).content
    assert b'id="approve-run"' not in page
    assert b"Held for approval" in page


def test_the_posting_views_answer_only_post(marketer_client, sync):
    run = make_run(sync, status=Status.QUEUED)
    for name in ("pause", "resume", "cancel", "approve", "reject"):
        _, url = _actions(sync, run)[name]
        assert marketer_client.get(url).status_code == 405, name


# Buttons that apply


def test_an_active_sync_offers_pause_resync_and_delete(marketer_client, sync):
    page = marketer_client.get(reverse("syncs:sync_detail", args=[sync.pk])).content.decode()
    assert 'id="pause"' in page and 'id="resync"' in page and 'id="delete"' in page
    assert 'id="resume"' not in page


def test_a_paused_sync_offers_resume_only(marketer_client, sync):
    Sync.objects.filter(pk=sync.pk).update(status=Sync.Status.PAUSED)
    page = marketer_client.get(reverse("syncs:sync_detail", args=[sync.pk])).content.decode()
    assert 'id="resume"' in page
    assert 'id="pause"' not in page and 'id="resync"' not in page


def test_only_an_active_run_offers_cancel(marketer_client, sync):
    finished = make_run(sync, status=Status.SUCCEEDED, finished_at=timezone.now())
    running = make_run(sync, status=Status.RUNNING, started_at=timezone.now())
    for run, shown in ((finished, False), (running, True)):
        url = reverse("syncs:run_detail", args=[sync.pk, run.pk])
        assert (b'id="cancel-run"' in marketer_client.get(url).content) is shown


def test_a_held_run_page_shows_what_approval_would_remove(marketer_client, sync):
    add_ledger(sync, [f"gone-{n:02d}" for n in range(25)])
    run = make_run(sync, status=Status.HELD, planned_removes=25)
    page = marketer_client.get(reverse("syncs:run_detail", args=[sync.pk, run.pk]))
    text = page.content.decode()
    assert "removes <strong>25</strong> members" in text
    assert "external_id:gone-00" in text and "external_id:gone-19" in text
    assert "external_id:gone-20" not in text  # a sample of 20
    assert 'id="approve-run"' in text and 'id="reject-run"' in text


# Happy paths


def test_pause_then_resume(marketer_client, sync):
    response = marketer_client.post(reverse("syncs:sync_pause", args=[sync.pk]))
    assert response["Location"] == reverse("syncs:sync_detail", args=[sync.pk])
    assert Sync.objects.get(pk=sync.pk).status == Sync.Status.PAUSED
    marketer_client.post(reverse("syncs:sync_resume", args=[sync.pk]))
    assert Sync.objects.get(pk=sync.pk).status == Sync.Status.ACTIVE


@pytest.mark.usefixtures("rq_redis")
def test_a_paused_sync_says_run_now_still_runs_it_once_and_it_does(
    marketer_client, viewer_client, sync
):
    paused = marketer_client.post(reverse("syncs:sync_pause", args=[sync.pk]))
    [message] = flashes(paused)
    assert "the schedule does not run it until you resume it" in message
    assert "Run now still runs it once" in message
    url = reverse("syncs:sync_detail", args=[sync.pk])
    page = marketer_client.get(url).content.decode()
    assert 'id="run-now"' in page and 'id="paused-note"' in page
    assert "Run now still runs it once, without resuming the schedule." in page
    seen_by_viewer = viewer_client.get(url).content.decode()
    assert 'id="paused-note"' in seen_by_viewer and "Run now still" not in seen_by_viewer

    marketer_client.post(reverse("syncs:sync_run_now", args=[sync.pk]))
    run = SyncRun.objects.get(sync=sync)
    assert (run.trigger, run.status) == (SyncRun.Trigger.MANUAL, Status.QUEUED)
    assert Sync.objects.get(pk=sync.pk).status == Sync.Status.PAUSED


def test_an_active_sync_has_no_paused_note(marketer_client, sync):
    page = marketer_client.get(reverse("syncs:sync_detail", args=[sync.pk])).content.decode()
    assert 'id="paused-note"' not in page


def test_resume_refused_shows_the_reason(marketer_client, sync):
    Sync.objects.filter(pk=sync.pk).update(status=Sync.Status.NEEDS_ATTENTION)
    Connection.objects.filter(pk=sync.connection_id).update(state=Connection.State.NEEDS_ATTENTION)
    response = marketer_client.post(reverse("syncs:sync_resume", args=[sync.pk]))
    assert any(sync.connection.name in text for text in flashes(response))
    assert Sync.objects.get(pk=sync.pk).status == Sync.Status.NEEDS_ATTENTION


def test_cancel_a_queued_run(marketer_client, sync):
    run = make_run(sync, status=Status.QUEUED)
    response = marketer_client.post(reverse("syncs:run_cancel", args=[sync.pk, run.pk]))
    assert response["Location"] == reverse("syncs:run_detail", args=[sync.pk, run.pk])
    run.refresh_from_db()
    assert run.status == Status.CANCELED


def test_canceling_a_finished_run_says_it_has_finished(marketer_client, sync):
    run = make_run(sync, status=Status.SUCCEEDED, finished_at=timezone.now())
    response = marketer_client.post(reverse("syncs:run_cancel", args=[sync.pk, run.pk]))
    assert any("has finished" in text for text in flashes(response))


@pytest.mark.usefixtures("rq_redis")
def test_approve_queues_a_run_and_opens_it(marketer_client, sync):
    held = make_run(sync, status=Status.HELD)
    response = marketer_client.post(reverse("syncs:run_approve", args=[sync.pk, held.pk]))
    new_run = SyncRun.objects.get(trigger=SyncRun.Trigger.RESUME)
    assert new_run.status == Status.QUEUED
    assert response["Location"] == reverse("syncs:run_detail", args=[sync.pk, new_run.pk])
    held.refresh_from_db()
    assert held.status == Status.CANCELED


def test_reject_cancels_the_held_run_and_pauses_the_sync(marketer_client, sync):
    held = make_run(sync, status=Status.HELD)
    marketer_client.post(reverse("syncs:run_reject", args=[sync.pk, held.pk]))
    held.refresh_from_db()
    assert held.status == Status.CANCELED
    assert Sync.objects.get(pk=sync.pk).status == Sync.Status.PAUSED


@pytest.mark.usefixtures("rq_redis")
def test_resync_asks_for_confirmation_then_queues_a_resync(marketer_client, sync):
    apply_changes(sync.cohort_id, add=[Identity("external_id", "u1")])
    url = reverse("syncs:sync_resync", args=[sync.pk])
    page = marketer_client.get(url)
    assert b'id="confirm-resync"' in page.content
    assert not SyncRun.objects.exists()
    response = marketer_client.post(url)
    run = SyncRun.objects.get()
    assert run.trigger == SyncRun.Trigger.RESYNC
    assert response["Location"] == reverse("syncs:run_detail", args=[sync.pk, run.pk])


def test_delete_asks_for_confirmation_then_goes_to_the_list(marketer_client, sync):
    add_ledger(sync, ["u1"])
    url = reverse("syncs:sync_delete", args=[sync.pk])
    assert b'id="confirm-delete"' in marketer_client.get(url).content
    assert Sync.objects.exists()
    response = marketer_client.post(url)
    assert response["Location"] == reverse("syncs:sync_list")
    assert not Sync.objects.exists()


def test_delete_refused_while_running_stays_on_the_sync(marketer_client, sync):
    make_run(sync, status=Status.RUNNING)
    response = marketer_client.post(reverse("syncs:sync_delete", args=[sync.pk]))
    assert response["Location"] == reverse("syncs:sync_detail", args=[sync.pk])
    assert any("cancel it or wait" in text for text in flashes(response))
    assert Sync.objects.exists()
