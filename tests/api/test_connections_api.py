"""Connections managed through the API: admins create, change, test and delete them with the
dashboard's validation and audit; credentials are write-only; other roles are refused and
nothing changes."""

import json
from typing import Any

import pytest

from connections import crypto
from connections.models import Connection, ConnectionCheck
from connections.sandbox import DEMO_BRAZE_KEY
from core.models import AuditEntry
from syncs.models import Sync, SyncedMember, SyncRun
from syncs.services import start_run
from tests.factories import make_cohort, make_connection, make_sync
from tests.jobs import run_jobs, run_jobs_and_commit_hooks

pytestmark = pytest.mark.django_db

SECRET = "braze-rest-key-9999-wxyz"
BRAZE_CONFIG: dict[str, Any] = {"instance": "EU-01", "default_identifier": "external_id"}
BRAZE: dict[str, Any] = {
    "kind": "braze",
    "name": "Braze EU",
    "config": BRAZE_CONFIG,
    "credentials": {"secret": SECRET},
}


def _snapshot():
    return (
        list(Connection.objects.values()),
        AuditEntry.objects.count(),
        ConnectionCheck.objects.count(),
    )


def test_an_admin_creates_a_connection_with_the_forms_defaults_and_its_audit(admin_api, admin_user):
    response = admin_api.post("/connections", BRAZE)
    assert response.status_code == 201
    body = response.json()
    connection = Connection.objects.get()
    assert body["id"] == connection.pk
    assert body["secret"] == connection.masked_secret
    assert SECRET not in response.content.decode()
    assert crypto.decrypt(connection.encrypted_secret) == SECRET
    config = connection.get_config()
    assert config.rest_endpoint == "https://rest.fra-01.braze.eu"
    # What the page's form starts with, not the form's blank: never create junk profiles.
    assert config.update_existing_only is True
    assert config.objects_per_request == 75
    entry = AuditEntry.objects.get(action="connection.created")
    assert entry.actor == admin_user
    assert entry.details["kind"] == "braze"
    assert SECRET not in json.dumps(entry.details)


def test_a_credential_in_two_parts_takes_both(admin_api):
    body = {
        "kind": "amplitude",
        "name": "Amplitude",
        "config": {"region": "us", "project_name": "Shop"},
        "credentials": {"api_key": "amp-api-key-1111", "secret_key": "amp-secret-2222-abcd"},
    }
    response = admin_api.post("/connections", body)
    assert response.status_code == 201, response.json()
    connection = Connection.objects.get()
    assert json.loads(crypto.decrypt(connection.encrypted_secret)) == body["credentials"]
    assert response.json()["secret"].endswith("abcd")
    assert "amp-api-key-1111" not in response.content.decode()
    assert response.json()["direction"] == "source"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BRAZE, "kind": "mixpanel"}, "kind"),
        (
            {**BRAZE, "config": {"instance": "MOON-01", "default_identifier": "external_id"}},
            "config.instance",
        ),
        (
            {**BRAZE, "config": {**BRAZE_CONFIG, "objects_per_request": 500}},
            "config.objects_per_request",
        ),
        ({**BRAZE, "config": {**BRAZE_CONFIG, "colour": "blue"}}, "config.colour"),
        ({**BRAZE, "config": {**BRAZE_CONFIG, "array_cap": [1]}}, "config.array_cap"),
        ({**BRAZE, "credentials": {"token": SECRET}}, "credentials.token"),
        ({**BRAZE, "credentials": {}}, "credentials.secret"),
        ({**BRAZE, "name": "   "}, "name"),
        (
            {
                "kind": "amplitude",
                "name": "Amplitude",
                "config": {"region": "us", "project_name": "Shop"},
                "credentials": {"api_key": "amp-api-key-1111"},
            },
            "credentials.secret_key",
        ),
    ],
)
def test_bad_input_is_refused_on_its_field_and_saves_nothing(admin_api, body, field):
    before = _snapshot()
    response = admin_api.post("/connections", body)
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
    assert _snapshot() == before


def test_a_custom_endpoint_is_checked_by_the_egress_policy_as_on_the_form(admin_api, settings, dns):
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = False
    dns({"partner.test": ["93.184.216.34", "10.0.0.5"]})
    body = {
        **BRAZE,
        "config": {
            **BRAZE_CONFIG,
            "instance": "custom",
            "custom_endpoint": "https://partner.test",
        },
    }
    response = admin_api.post("/connections", body)
    assert response.status_code == 400
    assert "partner.test is 10.0.0.5, a private address" in " ".join(
        response.json()["errors"]["config.custom_endpoint"]
    )
    assert not Connection.objects.exists()
    dns({"partner.test": ["93.184.216.34"]})
    assert admin_api.post("/connections", body).status_code == 201


def test_a_second_connection_of_the_same_name_is_refused(admin_api):
    assert admin_api.post("/connections", BRAZE).status_code == 201
    before = _snapshot()
    response = admin_api.post("/connections", BRAZE)
    assert response.status_code == 400
    assert "already exists" in response.json()["message"]
    assert _snapshot() == before


@pytest.mark.parametrize("who", ["marketer_api", "viewer_api"])
def test_other_roles_are_refused_and_nothing_changes(request, who):
    api = request.getfixturevalue(who)
    connection = make_connection(name="Braze prod")
    before = _snapshot()
    assert api.post("/connections", BRAZE).status_code == 403
    assert api.patch(f"/connections/{connection.pk}", {"name": "Renamed"}).status_code == 403
    assert api.post(f"/connections/{connection.pk}/test").status_code == 403
    assert api.delete(f"/connections/{connection.pk}").status_code == 403
    assert _snapshot() == before


def test_a_patch_changes_only_what_is_sent_and_keeps_the_credential(admin_api, admin_user):
    connection = make_connection(name="Braze prod", secret=SECRET, objects_per_request=50)
    response = admin_api.patch(
        f"/connections/{connection.pk}", {"name": "Braze main", "config": {"array_cap": 200}}
    )
    assert response.status_code == 200, response.json()
    connection.refresh_from_db()
    assert connection.name == "Braze main"
    assert connection.get_config().array_cap == 200
    assert connection.get_config().objects_per_request == 50
    assert crypto.decrypt(connection.encrypted_secret) == SECRET
    entry = AuditEntry.objects.get(action="connection.updated")
    assert entry.actor == admin_user
    assert entry.details["changed"] == ["array_cap", "name"]


def test_a_patch_with_credentials_replaces_them_and_untests_the_connection(admin_api):
    connection = make_connection(name="Braze prod", secret=SECRET)
    Connection.objects.filter(pk=connection.pk).update(state=Connection.State.HEALTHY)
    response = admin_api.patch(
        f"/connections/{connection.pk}", {"credentials": {"secret": "braze-new-key-0000-5678"}}
    )
    assert response.status_code == 200
    assert response.json()["secret"].endswith("5678")
    assert "braze-new-key" not in response.content.decode()
    connection.refresh_from_db()
    assert crypto.decrypt(connection.encrypted_secret) == "braze-new-key-0000-5678"
    assert connection.state == Connection.State.UNTESTED
    assert AuditEntry.objects.get(action="connection.updated").details["changed"] == ["credentials"]


@pytest.mark.parametrize(
    "body",
    [
        {"config": {"membership_mode": "sideways"}},
        {"config": {"kind": "appsflyer"}},
        {"kind": "appsflyer"},
        {"name": None},
        {"credentials": {"secret": ""}, "name": ""},
    ],
)
def test_a_bad_patch_changes_nothing(admin_api, body):
    connection = make_connection(name="Braze prod", secret=SECRET)
    before = _snapshot()
    response = admin_api.patch(f"/connections/{connection.pk}", body)
    assert response.status_code in (400, 422)
    assert _snapshot() == before


@pytest.mark.usefixtures("rq_redis")
def test_test_queues_the_check_job_and_answers_where_to_poll(admin_api, viewer_api, sandbox):
    connection = make_connection(endpoint=sandbox.url, secret=DEMO_BRAZE_KEY)
    response = admin_api.post(f"/connections/{connection.pk}/test")
    assert response.status_code == 202
    body = response.json()
    assert body["check"]["status"] == "queued"
    assert response["Location"] == body["poll"]
    assert AuditEntry.objects.filter(action="connection.check_requested").exists()

    run_jobs()
    polled = viewer_api.client.get(body["poll"])
    assert polled.status_code == 200
    assert polled.json()["status"] == "ok"
    connection.refresh_from_db()
    assert connection.state == Connection.State.HEALTHY
    other = make_connection(name="Other")
    assert (
        viewer_api.get(f"/connections/{other.pk}/checks/{body['check']['id']}").status_code == 404
    )


def test_deleting_a_connection_without_syncs_deletes_it_now(admin_api, admin_user):
    connection = make_connection(name="Braze prod")
    response = admin_api.delete(f"/connections/{connection.pk}")
    assert response.status_code == 204
    assert not Connection.objects.exists()
    assert AuditEntry.objects.get(action="connection.deleted").actor == admin_user


def test_a_connection_with_syncs_needs_a_cleanup_choice(admin_api, cohort):
    connection = make_connection(name="Braze prod")
    make_sync(cohort=cohort, connection=connection)
    before = _snapshot()
    for query in ("", "?cleanup=sideways"):
        response = admin_api.delete(f"/connections/{connection.pk}{query}")
        assert response.status_code == 400
        assert response.json()["message"]
    assert _snapshot() == before
    assert Sync.objects.exists()


@pytest.mark.usefixtures("rq_redis")
def test_remove_starts_cleanup_runs_and_the_last_one_deletes_the_connection(
    admin_api, sandbox, django_capture_on_commit_callbacks
):
    connection = make_connection(
        endpoint=sandbox.url, secret=DEMO_BRAZE_KEY, update_existing_only=False
    )
    cohort = make_cohort(name="churn", members=[f"churn-{n}" for n in range(5)])
    sync = make_sync(cohort=cohort, connection=connection)
    start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    assert SyncedMember.objects.filter(sync=sync).count() == 5

    response = admin_api.delete(f"/connections/{connection.pk}?cleanup=remove")
    assert response.status_code == 202
    body = response.json()
    cleanup = SyncRun.objects.get(trigger=SyncRun.Trigger.CLEANUP)
    assert body["deleted"] is False
    assert body["cleanup_runs"] == [{"sync_id": sync.pk, "run_id": cleanup.pk}]
    assert "cleanup runs finish" in body["message"]
    assert AuditEntry.objects.filter(action="connection.deletion_requested").exists()

    run_jobs_and_commit_hooks(django_capture_on_commit_callbacks)
    assert admin_api.get(f"/connections/{connection.pk}").status_code == 404


def test_leave_deletes_the_connection_and_its_syncs_now(admin_api, cohort):
    connection = make_connection(name="Braze prod")
    make_sync(cohort=cohort, connection=connection)
    response = admin_api.delete(f"/connections/{connection.pk}?cleanup=leave")
    assert response.status_code == 204
    assert not Connection.objects.exists()
    assert not Sync.objects.exists()
    assert AuditEntry.objects.filter(action="sync.deleted").exists()


def test_the_api_docs_show_connection_management(viewer_api):
    paths = viewer_api.get("/openapi.json").json()["paths"]
    assert {"post"} <= set(paths["/api/v1/connections"])
    assert {"patch", "delete"} <= set(paths["/api/v1/connections/{connection_id}"])
    assert "post" in paths["/api/v1/connections/{connection_id}/test"]
