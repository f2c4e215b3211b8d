"""Data-import keys through the API: admins only; the key is in the creation answer and nowhere
else; revoked keys are refused by the inbound API at once."""

import json

import pytest
from django.test import Client

from connections.keys import generate_import_key
from connections.models import ImportKey
from core.models import AuditEntry
from tests.api.helpers import queries_of

pytestmark = pytest.mark.django_db


def push_cohort(raw_key):
    body = {
        "client_secret": raw_key,
        "cohort_id": "c1",
        "name": "Pushed",
        "created_at": "2025-07-01T09:30:00Z",
    }
    return Client().post(
        "/partners/segment/cohorts", data=json.dumps(body), content_type="application/json"
    )


def test_an_admin_creates_a_key_shown_once_that_the_inbound_api_accepts(admin_api, admin_user):
    response = admin_api.post(
        "/import-keys", {"partner": "segment", "name": "Segment prod", "expires_in_days": 30}
    )
    assert response.status_code == 201
    body = response.json()
    key = ImportKey.objects.get()
    assert body["key"].startswith(key.prefix + "_")
    assert body["import_key"]["id"] == key.pk
    assert body["import_key"]["status"] == "active"
    assert body["import_key"]["expires_at"] is not None
    assert key.created_by == admin_user
    assert body["key"] not in json.dumps(list(ImportKey.objects.values()), default=str)
    listed = admin_api.get("/import-keys").json()
    assert listed["items"][0]["prefix"] == key.prefix
    assert "key" not in listed["items"][0]
    assert body["key"] not in admin_api.get("/import-keys").content.decode()
    assert push_cohort(body["key"]).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"partner": "nobody", "name": "x"}, "partner"),
        ({"partner": "segment", "name": ""}, "name"),
        ({"partner": "segment", "name": "x" * 101}, "name"),
        ({"partner": "segment", "name": "x", "expires_in_days": 0}, "expires_in_days"),
        ({"partner": "segment", "name": "x", "expires_in_days": 10**40}, "expires_in_days"),
    ],
)
def test_bad_input_gets_400_with_the_field_and_creates_nothing(admin_api, body, field):
    response = admin_api.post("/import-keys", body)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not ImportKey.objects.exists()


def test_an_admin_revokes_a_key_and_the_inbound_api_refuses_it_next(admin_api, admin_user):
    key, raw = generate_import_key(partner="segment", name="Segment", actor=None)
    response = admin_api.post(f"/import-keys/{key.pk}/revoke")
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert AuditEntry.objects.get(action="import_key.revoked").actor == admin_user
    again = admin_api.post(f"/import-keys/{key.pk}/revoke")
    assert again.status_code == 400
    assert "already revoked" in again.json()["message"]
    assert push_cohort(raw).status_code == 401
    assert admin_api.post("/import-keys/424242/revoke").status_code == 404


@pytest.mark.parametrize(("client", "status"), [("marketer_api", 403), ("viewer_api", 403)])
def test_only_admins_manage_keys(request, client, status):
    key, _ = generate_import_key(partner="segment", name="Segment", actor=None)
    api = request.getfixturevalue(client)
    assert api.get("/import-keys").status_code == status
    assert api.post("/import-keys", {"partner": "segment", "name": "x"}).status_code == status
    assert api.post(f"/import-keys/{key.pk}/revoke").status_code == status
    assert ImportKey.objects.count() == 1
    assert ImportKey.objects.get().revoked_at is None


def test_outsiders_get_404_on_keys(outsider_api):
    assert outsider_api.get("/import-keys").status_code == 404
    assert outsider_api.post("/import-keys", {"partner": "segment", "name": "x"}).status_code == 404
    assert not ImportKey.objects.exists()


def test_the_key_list_costs_the_same_queries_for_one_key_or_many(
    admin_api, django_assert_num_queries
):
    generate_import_key(partner="segment", name="First", actor=None)
    admin_api.get("/import-keys")  # last-used is written on the first request only
    one = queries_of(lambda: admin_api.get("/import-keys"))
    for n in range(6):
        generate_import_key(partner="segment", name=f"More {n}", actor=None)
    with django_assert_num_queries(one):
        assert len(admin_api.get("/import-keys").json()["items"]) == 7
