"""A result that does not lie (#11): with "update existing only", Braze skips members who have
no profile yet and still answers 201, so a run can only say it sent them. The run page, its
history, member lookup, the wizard's preview and the API say "sent", not "added" or "in the
destination"; a connection that creates profiles keeps "added"."""

import pytest
import requests
from django.urls import reverse

from cohorts.membership import Identity, apply_changes
from connections.sandbox import DEMO_BRAZE_KEY
from syncs.models import SyncRun
from syncs.pages.preview import preview_new_sync
from syncs.services import start_run
from tests.api.helpers import api_client_for
from tests.factories import make_simulator_connection, make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


def run_once(sandbox, cohort, **config):
    connection = make_simulator_connection(sandbox, name="Braze", **config)
    apply_changes(cohort.pk, add=[Identity("external_id", v) for v in ("known", "unknown")])
    # Only "known" has a Braze profile.
    requests.post(
        f"{sandbox.url}/users/track",
        json={"attributes": [{"external_id": "known", "_update_existing_only": False, "x": 1}]},
        headers={"Authorization": f"Bearer {DEMO_BRAZE_KEY}"},
        timeout=5,
    ).raise_for_status()
    sync = make_sync(cohort=cohort, connection=connection)
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    run.refresh_from_db()
    return connection, sync, run


def profile_exists(sandbox, external_id):
    url = f"{sandbox.url}/_sandbox/braze/profiles/external_id:{external_id}"
    return requests.get(url, timeout=5).status_code == 200


def test_update_existing_only_adds_are_sent_not_added_everywhere(
    sandbox, cohort, viewer_client, viewer
):
    connection, sync, run = run_once(sandbox, cohort, update_existing_only=True)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.added == 2 and not run.adds_applied
    assert not profile_exists(sandbox, "unknown")  # what the count could not know

    page = viewer_client.get(reverse("syncs:run_detail", args=[sync.pk, run.pk])).content.decode()
    assert "<dt>Sent</dt>" in page and "<dt>Added</dt>" not in page
    assert "applies them only to profiles that already exist" in page
    history = viewer_client.get(reverse("syncs:sync_detail", args=[sync.pk])).content.decode()
    assert "applied only to profiles that already exist" in history
    sync.refresh_from_db()
    assert sync.last_run_summary.startswith("+2 sent")

    lookup = viewer_client.get(reverse("members:lookup"), {"q": "unknown"}).content.decode()
    assert '<span class="badge running">Sent</span>' in lookup
    assert "In destination" not in lookup

    notes = preview_new_sync(cohort_id=cohort.pk, connection=connection, mapping=["external_id"])
    assert any("updates existing profiles only" in note for note in notes.notes)


def test_the_api_says_whether_a_runs_adds_were_applied(sandbox, cohort, viewer):
    _, sync, run = run_once(sandbox, cohort, update_existing_only=True)
    body = api_client_for(viewer).get(f"/syncs/{sync.pk}/runs/{run.pk}").json()
    assert body["added"] == 2 and body["adds_applied"] is False


def test_a_connection_that_creates_profiles_says_added_and_in_destination(
    sandbox, cohort, viewer_client
):
    connection, sync, run = run_once(sandbox, cohort, update_existing_only=False)
    assert run.adds_applied and profile_exists(sandbox, "unknown")
    page = viewer_client.get(reverse("syncs:run_detail", args=[sync.pk, run.pk])).content.decode()
    assert "<dt>Added</dt>" in page and "adds-unconfirmed" not in page
    lookup = viewer_client.get(reverse("members:lookup"), {"q": "unknown"}).content.decode()
    assert "In destination" in lookup
    notes = preview_new_sync(cohort_id=cohort.pk, connection=connection, mapping=["external_id"])
    assert notes.notes == []
