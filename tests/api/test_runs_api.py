"""Runs through the API: trigger (202, or 200 with the run already active), list newest first,
read with counts and errors grouped by reason, its requests and answers redacted, and one run end
to end through a real worker and the partner simulator."""

import json

import pytest
import requests

from connections.sandbox import DEMO_BRAZE_KEY
from core.models import AuditEntry
from syncs.models import SyncRun, SyncRunError
from syncs.services import start_run, waits_for_queue
from tests.api.helpers import queries_of
from tests.factories import make_cohort, make_run, make_simulator_connection, make_sync
from tests.jobs import run_jobs
from tests.queues import queues_at

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


def finished_run(sync, **counts):
    return make_run(sync, trigger=SyncRun.Trigger.SCHEDULE, **counts)


def test_a_marketer_triggers_a_run_and_a_second_trigger_returns_the_same_run(
    marketer_api, marketer, sync
):
    first = marketer_api.post(f"/syncs/{sync.pk}/runs")
    assert first.status_code == 202
    run = SyncRun.objects.get()
    assert first.json()["id"] == run.pk
    assert first.json()["status"] == "queued"
    assert run.trigger == SyncRun.Trigger.API
    assert run.requested_by == marketer
    second = marketer_api.post(f"/syncs/{sync.pk}/runs")
    assert second.status_code == 200
    assert second.json()["id"] == run.pk
    assert SyncRun.objects.count() == 1
    assert AuditEntry.objects.filter(action="sync.run_requested").count() == 1


def test_a_paused_sync_can_be_run_now_as_on_the_dashboard(marketer_api, sync):
    marketer_api.post(f"/syncs/{sync.pk}/pause")
    assert marketer_api.post(f"/syncs/{sync.pk}/runs").status_code == 202
    # Once, as the pause says: the sync stays out of its schedule.
    assert marketer_api.get(f"/syncs/{sync.pk}").json()["status"] == "paused"


def test_a_run_asked_for_while_the_queue_is_unreachable_waits_queued_and_says_why(
    marketer_api, sync, settings
):
    settings.RQ_QUEUES = queues_at("redis://127.0.0.1:1/0", timeout=5)
    response = marketer_api.post(f"/syncs/{sync.pk}/runs")
    assert response.status_code == 202
    run = SyncRun.objects.get(pk=response.json()["id"])
    assert run.status == SyncRun.Status.QUEUED
    assert waits_for_queue(run)


def test_runs_are_listed_newest_first_and_paged(viewer_api, sync):
    runs = [finished_run(sync, added=n) for n in range(3)]
    page = viewer_api.get(f"/syncs/{sync.pk}/runs", limit=2).json()
    assert page["count"] == 3
    assert [item["id"] for item in page["items"]] == [runs[2].pk, runs[1].pk]
    rest = viewer_api.get(f"/syncs/{sync.pk}/runs", limit=2, offset=2).json()
    assert [item["id"] for item in rest["items"]] == [runs[0].pk]


def test_a_run_reads_with_its_counts_and_errors_grouped_by_reason(viewer_api, sync):
    run = finished_run(sync, planned_adds=5, added=2, failed=3, requests=2, retries=1)
    for member, reason, status in [
        ("external_id:a", "Invalid external_id", 400),
        ("external_id:b", "Invalid external_id", 400),
        ("external_id:c", "Profile not found", None),
    ]:
        SyncRunError.objects.create(
            run=run, operation="add", member=member, reason=reason, partner_status=status
        )
    body = viewer_api.get(f"/syncs/{sync.pk}/runs/{run.pk}").json()
    assert (body["planned_adds"], body["added"], body["failed"]) == (5, 2, 3)
    assert (body["requests"], body["retries"], body["status"]) == (2, 1, "succeeded")
    assert body["error_groups"] == [
        {
            "reason": "Invalid external_id",
            "count": 2,
            "partner_statuses": [400],
            "sample_members": ["external_id:a", "external_id:b"],
        },
        {
            "reason": "Profile not found",
            "count": 1,
            "partner_statuses": [],
            "sample_members": ["external_id:c"],
        },
    ]
    errors = viewer_api.get(f"/syncs/{sync.pk}/runs/{run.pk}/errors", limit=2).json()
    assert errors["count"] == 3
    assert [e["member"] for e in errors["items"]] == ["external_id:a", "external_id:b"]


def test_a_run_of_another_sync_is_not_found(viewer_api, sync, cohort, connection):
    other = finished_run(make_sync(cohort=cohort, connection=connection, name="Other"))
    for path in (f"/syncs/{sync.pk}/runs/{other.pk}", f"/syncs/{sync.pk}/runs/{other.pk}/errors"):
        response = viewer_api.get(path)
        assert response.status_code == 404
        assert response.json()["message"]
    assert viewer_api.get("/syncs/424242/runs").status_code == 404


def test_outsiders_get_404_on_runs(outsider_api, sync):
    run = finished_run(sync)
    assert outsider_api.get(f"/syncs/{sync.pk}/runs").status_code == 404
    assert outsider_api.get(f"/syncs/{sync.pk}/runs/{run.pk}").status_code == 404


def test_run_and_error_lists_cost_the_same_queries_for_one_row_or_many(
    viewer_api, sync, django_assert_num_queries
):
    run = finished_run(sync)
    SyncRunError.objects.create(run=run, operation="add", member="external_id:0", reason="x")
    viewer_api.get(f"/syncs/{sync.pk}/runs")  # last-used is written on the first request only
    runs_path, errors_path = f"/syncs/{sync.pk}/runs", f"/syncs/{sync.pk}/runs/{run.pk}/errors"
    counts = {
        path: queries_of(lambda p=path: viewer_api.get(p)) for path in (runs_path, errors_path)
    }
    for n in range(6):
        finished_run(sync)
        SyncRunError.objects.create(run=run, operation="add", member=f"external_id:{n}", reason="x")
    for path, expected in counts.items():
        with django_assert_num_queries(expected):
            assert len(viewer_api.get(path).json()["items"]) == 7


def test_end_to_end_a_script_creates_a_sync_runs_it_and_reads_the_outcome(marketer_api, sandbox):
    connection = make_simulator_connection(sandbox)
    cohort = make_cohort(name="Winback", members=7)

    created = marketer_api.post(
        "/syncs",
        {
            "name": "Winback → Braze",
            "cohort_id": cohort.pk,
            "connection_id": connection.pk,
            "identifier_mapping": ["external_id"],
            "cadence": {"kind": "once"},
        },
    )
    assert created.status_code == 201
    sync_id = created.json()["id"]
    triggered = marketer_api.post(f"/syncs/{sync_id}/runs")
    assert triggered.status_code == 202
    run_id = triggered.json()["id"]

    run_jobs()

    run = marketer_api.get(f"/syncs/{sync_id}/runs/{run_id}").json()
    assert run["status"] == "succeeded"
    assert (run["planned_adds"], run["added"], run["failed"], run["skipped"]) == (7, 7, 0, 0)
    assert run["requests"] >= 1
    assert run["started_at"] is not None and run["finished_at"] is not None
    assert run["error_groups"] == []
    listed = marketer_api.get(f"/syncs/{sync_id}").json()
    assert listed["last_run_status"] == "succeeded"


def test_a_runs_requests_and_answers_read_redacted_as_on_its_page(viewer_api, sandbox):
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"partner": "braze", "statuses": [503]}, timeout=5
    ).raise_for_status()
    sync = make_sync(
        cohort=make_cohort(name="Winback", members=10),
        connection=make_simulator_connection(sandbox),
    )
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()

    assert viewer_api.get(f"/syncs/{sync.pk}/runs/{run.pk}").json()["exchanges_left_out"] == 0
    page = viewer_api.get(f"/syncs/{sync.pk}/runs/{run.pk}/exchanges").json()
    assert page["count"] == 2
    refused, accepted = page["items"]
    assert (refused["batch"], refused["attempt"], refused["status"]) == (1, 1, 503)
    assert (accepted["batch"], accepted["attempt"], accepted["status"]) == (1, 2, 201)
    assert refused["path"] == "/users/track"
    assert json.loads(refused["answer"]) == {"message": "Service Unavailable"}
    assert json.loads(refused["request"])["attributes"][3] == "… and 7 more objects"
    assert DEMO_BRAZE_KEY not in json.dumps(page)
    other = make_sync(cohort=make_cohort(name="Other", members=1), name="Other")
    assert viewer_api.get(f"/syncs/{other.pk}/runs/{run.pk}/exchanges").status_code == 404
