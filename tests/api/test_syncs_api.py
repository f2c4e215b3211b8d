"""Syncs through the API: the dashboard's services and role rules, JSON errors, nothing changed
on refused input, and list queries that do not grow with rows."""

import json

import pytest
from django.test import Client

from api.tokens import create_api_token
from core.models import AuditEntry
from syncs.models import Sync, SyncRun
from tests.api.helpers import queries_of
from tests.factories import make_sync

pytestmark = pytest.mark.django_db


def new_sync_body(cohort, connection, **fields):
    return {
        "name": "Churn → Braze",
        "cohort_id": cohort.pk,
        "connection_id": connection.pk,
        "identifier_mapping": ["external_id"],
        "cadence": {"kind": "daily", "time_of_day": "09:00", "timezone": "Europe/Paris"},
        **fields,
    }


def test_a_marketer_creates_a_sync_audited_as_them(marketer_api, marketer, cohort, connection):
    response = marketer_api.post("/syncs", new_sync_body(cohort, connection))
    assert response.status_code == 201
    body = response.json()
    sync = Sync.objects.get(pk=body["id"])
    assert sync.created_by == marketer
    assert body["cohort"] == {"id": cohort.pk, "name": "Churn risk"}
    assert body["connection"] == {"id": connection.pk, "name": "Braze prod"}
    assert body["cadence"] == {"kind": "daily", "time_of_day": "09:00", "timezone": "Europe/Paris"}
    assert body["next_run_at"] is not None
    entry = AuditEntry.objects.get(action="sync.created")
    assert entry.actor == marketer


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "  "}, "name"),
        ({"identifier_mapping": ["idfv"]}, "identifier_mapping"),
        ({"identifier_mapping": []}, "identifier_mapping"),
        ({"cadence": {"kind": "weekly"}}, "cadence"),
        ({"cadence": {"kind": "hourly", "minute": 60}}, "cadence"),
        ({"leaving_members": "forget"}, "leaving_members"),
        ({"mass_removal_threshold_pct": 0}, "mass_removal_threshold_pct"),
        ({"options": {"membership_mode": "nope"}}, "options"),
        ({"options": {"membership_mode": ["array"]}}, "options"),
        ({"cohort_id": 987654}, "cohort_id"),
        ({"connection_id": 987654}, "connection_id"),
    ],
)
def test_input_the_service_refuses_gets_400_with_the_field_and_creates_nothing(
    marketer_api, cohort, connection, fields, field
):
    response = marketer_api.post("/syncs", new_sync_body(cohort, connection, **fields))
    assert response.status_code == 400
    body = response.json()
    assert body["message"]
    assert field in body["errors"]
    assert not Sync.objects.exists()
    assert not AuditEntry.objects.filter(action="sync.created").exists()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{", 400),
        (b"not json", 400),
        (b"[1, 2]", 422),
        (b'"text"', 422),
        (b"{}", 422),
        (b'{"name": 5}', 422),
        (b'{"unknown": 1}', 422),
        (b'{"name": "a\\u0000b"}', 422),
        (b'{"name": "\\ud800"}', 422),
        (b'{"mass_removal_threshold_pct": NaN}', 422),
        (b'{"cohort_id": 1e400}', 422),
        (b'{"cohort_id": 99999999999999999999999999}', 422),
        (b'{"cohort_id": ' + b"9" * 5000 + b"}", 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
    ],
)
def test_malformed_bodies_get_a_json_error_never_a_500(marketer_api, body, status):
    response = marketer_api.post("/syncs", body)
    assert response.status_code == status
    assert response.json()["message"]
    assert not Sync.objects.exists()


def test_every_role_reads_syncs_and_outsiders_get_404(viewer_api, outsider_api, sync):
    assert viewer_api.get(f"/syncs/{sync.pk}").json()["name"] == sync.name
    assert viewer_api.get("/syncs").json()["count"] == 1
    assert outsider_api.get("/syncs").status_code == 404
    assert outsider_api.get(f"/syncs/{sync.pk}").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/syncs"),
        ("patch", "/syncs/{pk}"),
        ("post", "/syncs/{pk}/pause"),
        ("post", "/syncs/{pk}/resume"),
        ("delete", "/syncs/{pk}"),
        ("post", "/syncs/{pk}/runs"),
    ],
)
def test_viewers_get_403_and_outsiders_404_on_every_write(
    viewer_api, outsider_api, sync, method, path
):
    path = path.format(pk=sync.pk)
    before = Sync.objects.values().get()
    for api, status in ((viewer_api, 403), (outsider_api, 404)):
        call = getattr(api, method)
        response = call(path) if method == "delete" else call(path, {"name": "changed"})
        assert response.status_code == status
        assert response.json()["message"]
    assert Sync.objects.values().get() == before
    assert not SyncRun.objects.exists()


def test_a_marketer_changes_only_the_fields_sent(marketer_api, marketer, sync):
    response = marketer_api.patch(
        f"/syncs/{sync.pk}", {"name": "Renamed", "mass_removal_threshold_pct": 20}
    )
    assert response.status_code == 200
    sync.refresh_from_db()
    assert (sync.name, sync.mass_removal_threshold_pct) == ("Renamed", 20)
    assert sync.identifier_mapping == ["external_id"]
    entry = AuditEntry.objects.get(action="sync.updated")
    assert entry.actor == marketer
    assert set(entry.details) == {"name", "mass_removal_threshold_pct"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"cadence": {"kind": "daily"}}, 400),
        ({"name": None}, 422),
        ({"cohort_id": 1}, 422),
        ({"identifier_mapping": "external_id"}, 422),
    ],
)
def test_a_refused_change_changes_nothing(marketer_api, sync, body, status):
    before = Sync.objects.values().get()
    response = marketer_api.patch(f"/syncs/{sync.pk}", body)
    assert response.status_code == status
    assert response.json()["message"]
    assert Sync.objects.values().get() == before


def test_pause_then_resume_and_refusals_say_why(marketer_api, sync):
    paused = marketer_api.post(f"/syncs/{sync.pk}/pause")
    assert paused.status_code == 200
    assert paused.json()["status"] == "paused"
    again = marketer_api.post(f"/syncs/{sync.pk}/pause")
    assert again.status_code == 400
    assert "paused" in again.json()["message"]
    resumed = marketer_api.post(f"/syncs/{sync.pk}/resume")
    assert resumed.json()["status"] == "active"
    assert marketer_api.post(f"/syncs/{sync.pk}/resume").status_code == 400
    actions = list(AuditEntry.objects.values_list("action", flat=True))
    assert actions.count("sync.paused") == actions.count("sync.resumed") == 1


def test_delete_is_refused_while_a_run_is_active_then_deletes(marketer_api, sync):
    run = SyncRun.objects.create(sync=sync, trigger=SyncRun.Trigger.MANUAL)
    refused = marketer_api.delete(f"/syncs/{sync.pk}")
    assert refused.status_code == 400
    assert f"Run {run.pk}" in refused.json()["message"]
    assert Sync.objects.filter(pk=sync.pk).exists()
    SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.SUCCEEDED)
    response = marketer_api.delete(f"/syncs/{sync.pk}")
    assert response.status_code == 204
    assert not Sync.objects.filter(pk=sync.pk).exists()
    assert marketer_api.get(f"/syncs/{sync.pk}").status_code == 404


@pytest.mark.parametrize("method", ["patch", "delete", "post"])
def test_unknown_syncs_get_404_in_json(marketer_api, method):
    path = "/syncs/424242" if method != "post" else "/syncs/424242/pause"
    call = getattr(marketer_api, method)
    response = call(path) if method == "delete" else call(path, {})
    assert response.status_code == 404
    assert "424242" in response.json()["message"]


def test_unknown_paths_and_methods_answer_json(marketer_api):
    missing = marketer_api.get("/nothing/here")
    assert missing.status_code == 404
    assert missing.json()["message"]
    slash = marketer_api.post("/syncs/", {})
    assert slash.status_code == 404
    assert marketer_api.client.put("/api/v1/syncs").status_code == 405


def test_the_sync_list_costs_the_same_queries_for_one_sync_or_many(
    viewer_api, cohort, connection, django_assert_num_queries
):
    make_sync(cohort=cohort, connection=connection, name="First")
    viewer_api.get("/syncs")  # last-used is written on the first request only
    one = queries_of(lambda: viewer_api.get("/syncs"))
    for n in range(6):
        make_sync(cohort=cohort, connection=connection, name=f"More {n}")

    with django_assert_num_queries(one):
        assert len(viewer_api.get("/syncs").json()["items"]) == 7


def test_no_csrf_token_is_needed_with_a_token(marketer, cohort, connection):
    raw = create_api_token(user=marketer, name="t", actor=None)[1]
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {raw}"})
    response = client.post(
        "/api/v1/syncs",
        data=json.dumps(new_sync_body(cohort, connection)),
        content_type="application/json",
    )
    assert response.status_code == 201


def test_an_unexpected_error_is_logged_and_answered_500_in_json_without_details(
    marketer_api, sync, monkeypatch, caplog
):
    def broken(**kwargs):
        raise RuntimeError("internal detail")

    monkeypatch.setattr("api.endpoints.syncs.pause_sync_service", broken)
    response = marketer_api.post(f"/syncs/{sync.pk}/pause")
    assert response.status_code == 500
    assert "internal detail" not in response.content.decode()
    assert response.json()["message"]
    assert "internal detail" in caplog.text


def test_a_trait_sync_is_created_and_edited_through_the_same_rules(
    marketer_api, cohort, connection
):
    body = new_sync_body(
        cohort,
        connection,
        kind="traits",
        traits=[{"property": "plan"}, {"property": "score", "attribute": "lead_score"}],
        traits_send_nulls=True,
    )
    response = marketer_api.post("/syncs", body)
    assert response.status_code == 201, response.json()
    created = response.json()
    assert (created["kind"], created["leaving_members"], created["traits_send_nulls"]) == (
        "traits",
        "keep",
        True,
    )
    assert created["traits"][1] == {"property": "score", "attribute": "lead_score"}

    refused = marketer_api.patch(
        f"/syncs/{created['id']}", {"traits": [{"property": "plan", "attribute": "braze_id"}]}
    )
    assert refused.status_code == 400
    assert "traits" in refused.json()["errors"]
    changed = marketer_api.patch(f"/syncs/{created['id']}", {"traits": [{"property": "plan"}]})
    assert changed.json()["traits"] == [{"property": "plan", "attribute": "plan"}]

    bad = marketer_api.post("/syncs", {**body, "name": "Again", "traits": []})
    assert bad.status_code == 400 and "traits" in bad.json()["errors"]
    assert Sync.objects.count() == 1
