"""The import-request log: per key for admins (on the key's page), per cohort for every role."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cohorts.models import Cohort, ImportRequest
from connections.keys import generate_import_key
from tests.factories import make_cohort

pytestmark = pytest.mark.django_db

URL = reverse("cohorts:import_requests")


@pytest.fixture
def key(admin_user):
    return generate_import_key(partner="appsflyer", name="AppsFlyer prod", actor=admin_user)[0]


@pytest.fixture
def cohort():
    return make_cohort(source=Cohort.Source.PARTNER, partner="appsflyer", partner_cohort_id="coh_1")


def log(key=None, cohort=None, **fields):
    defaults = {
        "partner": "appsflyer",
        "endpoint": "cohorts/users",
        "status": ImportRequest.Status.APPLIED,
        "http_status": 201,
    }
    return ImportRequest.objects.create(key=key, cohort=cohort, **{**defaults, **fields})


def test_it_sends_anonymous_visitors_to_log_in(key):
    response = Client().get(f"{URL}?key={key.pk}")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_outsiders_get_404(outsider_client, key, cohort):
    for query in (f"?key={key.pk}", f"?cohort={cohort.pk}", ""):
        assert outsider_client.get(URL + query).status_code == 404


def test_only_admins_see_a_keys_requests_or_the_whole_log(viewer_client, marketer_client, key):
    for client in (viewer_client, marketer_client):
        assert client.get(f"{URL}?key={key.pk}").status_code == 403
        assert client.get(URL).status_code == 403


def test_every_role_sees_a_cohorts_requests(viewer_client, marketer_client, cohort, key):
    log(key=key, cohort=cohort, added=7)
    for client in (viewer_client, marketer_client):
        response = client.get(f"{URL}?cohort={cohort.pk}")
        assert response.status_code == 200
        assert response.context["page"].object_list[0].added == 7


def test_unknown_or_malformed_ids_get_404(admin_client):
    for query in ("?key=999999", "?cohort=999999", "?key=abc", "?cohort=-1", "?key=\uff11"):
        assert admin_client.get(URL + query).status_code == 404, query


def test_a_keys_requests_are_listed_newest_first_without_other_keys(admin_client, admin_user, key):
    other = generate_import_key(partner="appsflyer", name="Other", actor=admin_user)[0]
    first, second = log(key=key, added=1), log(key=key, added=2)
    log(key=other, added=3)
    response = admin_client.get(f"{URL}?key={key.pk}")
    assert list(response.context["page"].object_list) == [second, first]
    assert b"AppsFlyer prod" in response.content


def test_the_fragment_is_the_table_alone(admin_client, key, cohort):
    log(key=key, cohort=cohort, status="rejected", http_status=400, error="name must be a string")
    html = admin_client.get(f"{URL}?key={key.pk}&fragment=1").content.decode()
    assert "<html" not in html
    assert "name must be a string" in html
    assert "400 rejected" in html
    full = admin_client.get(f"{URL}?key={key.pk}").content.decode()
    assert "<html" in full and "name must be a string" in full


def test_pages_hold_fifty_and_cost_the_same_queries_however_many(admin_client, key, cohort):
    fields = {
        "partner": "appsflyer",
        "endpoint": "cohorts",
        "status": "applied",
        "http_status": 201,
    }
    ImportRequest.objects.bulk_create(
        ImportRequest(key=key, cohort=cohort, **fields) for _ in range(120)
    )
    with CaptureQueriesContext(connection) as first_page:
        response = admin_client.get(f"{URL}?key={key.pk}&fragment=1")
    assert len(response.context["page"].object_list) == 50
    assert f"?key={key.pk}&fragment=1&page=2" in response.content.decode()
    with CaptureQueriesContext(connection) as last_page:
        response = admin_client.get(f"{URL}?key={key.pk}&fragment=1&page=3")
    assert len(response.context["page"].object_list) == 20
    assert len(first_page) == len(last_page)


def test_the_key_page_loads_its_recent_requests(admin_client, key):
    html = admin_client.get(reverse("connections:key_detail", args=[key.pk])).content.decode()
    assert "Recent import requests" in html
    assert f'hx-get="{URL}?key={key.pk}&fragment=1"' in html


def test_a_push_shows_on_its_key_and_its_cohort(admin_client, rq_redis):
    key, secret = generate_import_key(partner="appsflyer", name="AF", actor=None)
    body = {
        "client_secret": secret,
        "cohort_id": "c-9",
        "name": "Pushed",
        "created_at": "2025-07-01",
    }
    assert Client().post("/partners/appsflyer/cohorts", body, "application/json").status_code == 201
    cohort = Cohort.objects.get(partner_cohort_id="c-9")
    for query in (f"?key={key.pk}", f"?cohort={cohort.pk}"):
        (shown,) = admin_client.get(URL + query).context["page"].object_list
        assert (shown.key, shown.cohort, shown.endpoint) == (key, cohort, "cohorts")
