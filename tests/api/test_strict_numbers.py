"""Security issue #13, finding 8: a whole number in a JSON body must be a JSON integer. Pydantic
would take `true` as 1 (a mass-removal guard of 1 %), and "50" or 50.0 as 50; each is a 422 that
names the field, and nothing changes."""

import pytest

from api.schemas import SyncCreateIn
from syncs.models import Sync

pytestmark = pytest.mark.django_db


def new_sync_body(cohort, connection, **fields):
    return {
        "name": "Churn → Braze",
        "cohort_id": cohort.pk,
        "connection_id": connection.pk,
        "identifier_mapping": ["external_id"],
        "cadence": {"kind": "once"},
        **fields,
    }


NOT_WHOLE_NUMBERS = [True, False, "50", 50.0, 12.5, None, [50], {"pct": 50}]


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_threshold_is_refused_with_a_clear_message(
    marketer_api, cohort, connection, value
):
    body = new_sync_body(cohort, connection, mass_removal_threshold_pct=value)
    response = marketer_api.post("/syncs", body)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert errors == {"mass_removal_threshold_pct": ["must be a whole number, not true or false"]}
    assert "mass_removal_threshold_pct: must be a whole number" in response.json()["message"]
    assert not Sync.objects.exists()


@pytest.mark.parametrize("value", NOT_WHOLE_NUMBERS)
def test_only_a_json_integer_is_a_threshold(marketer_api, cohort, connection, value):
    body = new_sync_body(cohort, connection, mass_removal_threshold_pct=value)
    response = marketer_api.post("/syncs", body)
    assert response.status_code == 422
    assert "mass_removal_threshold_pct" in response.json()["errors"]
    assert not Sync.objects.exists()


def test_an_integer_threshold_still_works(marketer_api, cohort, connection):
    body = new_sync_body(cohort, connection, mass_removal_threshold_pct=25)
    assert marketer_api.post("/syncs", body).status_code == 201
    assert Sync.objects.get().mass_removal_threshold_pct == 25


@pytest.mark.parametrize("value", [True, "30", 30.0])
def test_an_update_refuses_a_boolean_or_text_threshold_and_changes_nothing(
    marketer_api, sync, value
):
    before = sync.mass_removal_threshold_pct
    response = marketer_api.patch(f"/syncs/{sync.pk}", {"mass_removal_threshold_pct": value})
    assert response.status_code == 422
    assert "mass_removal_threshold_pct" in response.json()["errors"]
    sync.refresh_from_db()
    assert sync.mass_removal_threshold_pct == before


@pytest.mark.parametrize("field", ["cohort_id", "connection_id"])
def test_ids_in_a_body_are_json_integers_too(marketer_api, cohort, connection, field):
    real = cohort.pk if field == "cohort_id" else connection.pk
    for value in (True, str(real)):
        response = marketer_api.post("/syncs", new_sync_body(cohort, connection, **{field: value}))
        assert response.status_code == 422, value
        assert field in response.json()["errors"]


@pytest.mark.parametrize("value", [True, "30"])
def test_a_keys_lifetime_in_days_is_a_json_integer(admin_api, value):
    body = {"partner": "segment", "name": "Segment prod", "expires_in_days": value}
    response = admin_api.post("/import-keys", body)
    assert response.status_code == 422
    assert "expires_in_days" in response.json()["errors"]


def test_the_openapi_document_still_says_integer():
    schema = SyncCreateIn.model_json_schema()
    assert schema["properties"]["mass_removal_threshold_pct"]["type"] == "integer"
    assert schema["properties"]["cohort_id"]["type"] == "integer"
