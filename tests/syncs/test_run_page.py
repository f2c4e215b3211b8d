"""The run page: its timeline, counts and errors, what a held run would remove with the buttons
for those who may decide, the note on members counted without a row, access and query count."""

from datetime import timedelta

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from syncs.models import SyncedMember, SyncRun, SyncRunError, SyncRunEvent
from syncs.views.runs import REMOVAL_SAMPLE
from tests.factories import make_run, make_sync

pytestmark = pytest.mark.django_db
Kind = SyncRunEvent.Kind
Status = SyncRun.Status


@pytest.fixture
def sync():
    return make_sync()


def page_url(run):
    return reverse("syncs:run_detail", args=[run.sync_id, run.pk])


def add_ledger(sync, values):
    SyncedMember.objects.bulk_create(
        SyncedMember(
            sync=sync, id_type="external_id", value=v, dest_type="external_id", dest_value=v
        )
        for v in values
    )


def add_events(run, batches):
    start = run.queued_at
    events = [SyncRunEvent(run=run, at=start, kind=Kind.QUEUED, message="Run now.")]
    events += [
        SyncRunEvent(
            run=run,
            at=start + timedelta(seconds=1 + n),
            kind=Kind.BATCH,
            details={"added": 75, "failed": 0, "skipped": 0, "ms": 40},
        )
        for n in range(batches)
    ]
    events.append(
        SyncRunEvent(
            run=run, at=start + timedelta(seconds=batches + 2), kind=Kind.FINISHED, message="Done"
        )
    )
    SyncRunEvent.objects.bulk_create(events, batch_size=2_000)


def test_the_run_page_shows_the_timeline_with_batches_collapsed(viewer_client, sync):
    run = make_run(sync, planned_adds=300, added=300, finished_at=timezone.now())
    add_events(run, 4)
    response = viewer_client.get(page_url(run))
    page = response.content.decode()
    assert response.status_code == 200
    assert [row.title for row in response.context["timeline"]] == [
        "Queued",
        "Batches 1-4",
        "Finished",
    ]
    assert "+300 added, 0.2 s" in page
    assert "+6.0 s" in page  # Finished, six seconds after it was queued
    assert "Planned 300 = 300 added + 0 removed + 0 failed + 0 skipped" in page


def test_the_run_page_costs_the_same_queries_for_ten_or_ten_thousand_events(viewer_client, sync):
    few_events = make_run(sync, finished_at=timezone.now())
    many_events = make_run(sync, finished_at=timezone.now())
    add_events(few_events, 8)
    add_events(many_events, 10_000)
    for run in (few_events, many_events):
        SyncRunError.objects.create(run=run, operation="add", member="m", reason="r")

    def queries(run):
        with CaptureQueriesContext(db) as captured:
            response = viewer_client.get(page_url(run))
        assert response.status_code == 200
        return len(captured)

    assert queries(few_events) == queries(many_events)
    assert "Batches 1-10,000" in viewer_client.get(page_url(many_events)).content.decode()


def test_a_held_run_shows_what_would_be_removed_and_how_many(marketer_client, sync):
    add_ledger(sync, [f"gone-{n:03d}" for n in range(REMOVAL_SAMPLE + 15)])
    run = make_run(sync, status=Status.HELD, planned_removes=REMOVAL_SAMPLE + 10)
    response = marketer_client.get(page_url(run))
    page = response.content.decode()
    assert response.context["removals_now"] == REMOVAL_SAMPLE + 15
    assert f'<strong class="removals-now">{REMOVAL_SAMPLE + 15}</strong>' in page
    assert "the cohort changed since the run was held" in page
    assert "external_id:gone-000" in page
    assert f"external_id:gone-{REMOVAL_SAMPLE:03d}" not in page
    assert 'id="approve-run"' in page and 'id="reject-run"' in page


def test_a_viewer_sees_a_held_run_but_no_buttons_and_cannot_approve(viewer_client, sync):
    add_ledger(sync, ["gone-1", "gone-2"])
    run = make_run(sync, status=Status.HELD, planned_removes=2)
    page = viewer_client.get(page_url(run)).content.decode()
    assert "external_id:gone-1" in page
    assert 'id="approve-run"' not in page
    assert "A marketer or an admin approves or rejects it." in page
    approve = reverse("syncs:run_approve", args=[sync.pk, run.pk])
    assert viewer_client.post(approve).status_code == 403
    assert SyncRun.objects.get(pk=run.pk).status == Status.HELD
    assert SyncRun.objects.filter(sync=sync).count() == 1


def test_a_finished_run_shows_no_removal_sample(viewer_client, sync):
    add_ledger(sync, ["gone-1"])
    run = make_run(sync, finished_at=timezone.now())
    response = viewer_client.get(page_url(run))
    assert response.context["removal_sample"] == []
    assert "Held for approval" not in response.content.decode()


def test_errors_show_their_outcome_and_members_counted_without_a_row(viewer_client, sync):
    run = make_run(
        sync,
        status=Status.FAILED,
        finished_at=timezone.now(),
        planned_adds=10,
        added=2,
        failed=7,
        skipped=1,
    )
    SyncRunError.objects.bulk_create(
        [
            SyncRunError(
                run=run, operation="add", member="x:1", reason="Invalid", partner_status=400
            ),
            SyncRunError(
                run=run,
                operation="add",
                member="device_id:d",
                reason="No usable identifier (external_id)",
            ),
        ]
    )
    response = viewer_client.get(page_url(run))
    page = response.content.decode()
    assert [group.outcome for group in response.context["error_groups"]] == ["failed", "skipped"]
    assert response.context["unlisted"] == 6
    assert "6 more members were counted as failed or skipped without a row of their own" in page
    assert "Export 2 failed and skipped members (CSV)" in page


def test_outsiders_get_404_and_a_run_of_another_sync_is_not_found(
    outsider_client, viewer_client, sync
):
    run = make_run(sync)
    assert outsider_client.get(page_url(run)).status_code == 404
    other = make_sync(name="Other")

    wrong = reverse("syncs:run_detail", args=[other.pk, run.pk])
    assert viewer_client.get(wrong).status_code == 404


def test_the_run_page_only_answers_get(marketer_client, sync):
    run = make_run(sync)
    assert marketer_client.post(page_url(run)).status_code == 405
    assert SyncRun.objects.get(pk=run.pk).status == Status.SUCCEEDED


def test_a_held_runs_counts_say_it_is_waiting_not_that_they_do_not_add_up(viewer_client, sync):
    run = make_run(sync, status=Status.HELD, planned_removes=8)
    page = viewer_client.get(page_url(run)).content.decode()
    assert "held: nothing is sent until someone approves" in page
    assert "do not add up" not in page
