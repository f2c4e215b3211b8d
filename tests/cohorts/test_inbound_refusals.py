"""Security issue #13, finding 4: requests refused before they show a genuine data-import key are
counted per partner, reason and minute, never stored one row each; a request with a genuine key
keeps its ImportRequest row; every 429 of the inbound API says when to come back (Retry-After)."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cohorts.inbound import refusals
from cohorts.inbound.service import RateWindow
from cohorts.models import ImportRequest, RefusedImportCount
from connections.keys import generate_import_key, revoke_import_key

pytestmark = pytest.mark.django_db

PARTNER = "amplitude"
COHORTS = f"/partners/{PARTNER}/cohorts"
USERS = f"/partners/{PARTNER}/cohorts/users"
MADE_UP = "csik_" + "A" * 12 + "_" + "b" * 43
Reason = RefusedImportCount.Reason


@pytest.fixture(autouse=True)
def _clean_redis(rq_redis):
    return rq_redis


@pytest.fixture
def key_and_secret():
    return generate_import_key(partner=PARTNER, name="Amplitude prod", actor=None)


def post(path, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return Client().post(path, data=data, content_type="application/json", **extra)


def cohort_body(secret, **more):
    return {
        "client_secret": secret,
        "cohort_id": "coh_1",
        "name": "Churn",
        "created_at": "2025-07-01T09:30:00Z",
        **more,
    }


def counts():
    return {
        (row.partner, row.reason): row.count
        for row in RefusedImportCount.objects.order_by("partner", "reason")
    }


def test_a_flood_of_made_up_keys_is_one_counter_not_one_row_per_request():
    for _ in range(200):
        response = post(COHORTS, cohort_body(MADE_UP))
        assert (response.status_code, response.json()) == (
            401,
            {"message": "Invalid client secret"},
        )
    assert not ImportRequest.objects.exists()
    assert counts() == {(PARTNER, Reason.UNKNOWN_KEY): 200}
    assert RefusedImportCount.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "extra", "status", "reason"),
    [
        ({"cohort_id": "coh_1", "name": "x"}, {}, 400, Reason.NO_KEY),
        ({"client_secret": 17, "cohort_id": "coh_1"}, {}, 400, Reason.NO_KEY),
        ("not json", {}, 400, Reason.NOT_JSON),
        ("[]", {}, 400, Reason.NOT_JSON),
        (cohort_body("dik-1234"), {}, 401, Reason.UNKNOWN_KEY),
        ({"cohort_id": "c"}, {"HTTP_AUTHORIZATION": f"Bearer {MADE_UP}"}, 401, Reason.UNKNOWN_KEY),
        (json.dumps({"padding": "x" * (2 * 1024 * 1024)}), {}, 413, Reason.TOO_LARGE),
    ],
)
def test_each_refusal_without_a_genuine_key_is_counted_under_its_reason(
    body, extra, status, reason
):
    for path in (COHORTS, USERS):
        assert post(path, body, **extra).status_code == status
    assert not ImportRequest.objects.exists()
    assert counts() == {(PARTNER, reason): 2}


def test_requests_with_a_genuine_key_keep_their_row_even_when_refused(key_and_secret):
    key, secret = key_and_secret
    assert post(COHORTS, cohort_body(secret)).status_code == 201
    assert post(USERS, {"client_secret": secret, "cohort_id": "nope"}).status_code == 400
    assert post("/partners/mixpanel/cohorts", cohort_body(secret)).status_code == 401
    revoke_import_key(key=key, actor=None)
    assert post(COHORTS, cohort_body(secret)).status_code == 401
    logged = list(ImportRequest.objects.order_by("id").values_list("key", "http_status"))
    assert logged == [(key.pk, 201), (key.pk, 400), (key.pk, 401), (key.pk, 401)]
    assert counts() == {}


def test_counts_are_per_partner_reason_and_minute():
    first = datetime(2026, 3, 1, 9, 15, 5, tzinfo=UTC)
    for moment in (first, first + timedelta(seconds=50), first + timedelta(seconds=60)):
        refusals.count_refusal(partner=PARTNER, reason=Reason.UNKNOWN_KEY, now=moment)
    refusals.count_refusal(partner="mixpanel", reason=Reason.UNKNOWN_KEY, now=first)
    refusals.count_refusal(partner=PARTNER, reason=Reason.NO_KEY, now=first)
    rows = RefusedImportCount.objects.order_by("partner", "reason", "minute")
    assert [(r.partner, r.reason, r.minute, r.count) for r in rows] == [
        (PARTNER, Reason.NO_KEY, datetime(2026, 3, 1, 9, 15, tzinfo=UTC), 1),
        (PARTNER, Reason.UNKNOWN_KEY, datetime(2026, 3, 1, 9, 15, tzinfo=UTC), 2),
        (PARTNER, Reason.UNKNOWN_KEY, datetime(2026, 3, 1, 9, 16, tzinfo=UTC), 1),
        ("mixpanel", Reason.UNKNOWN_KEY, datetime(2026, 3, 1, 9, 15, tzinfo=UTC), 1),
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_refusals_lose_no_count():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    moment = timezone.now()

    def refuse(_):
        try:
            refusals.count_refusal(partner=PARTNER, reason=Reason.UNKNOWN_KEY, now=moment)
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(refuse, range(80)))
    assert RefusedImportCount.objects.get().count == 80


def test_the_import_log_shows_what_was_refused_without_a_key_in_the_last_24_hours(admin_client):
    now = timezone.now()
    for _ in range(3):
        refusals.count_refusal(partner=PARTNER, reason=Reason.UNKNOWN_KEY, now=now)
    refusals.count_refusal(partner=PARTNER, reason=Reason.NO_KEY, now=now - timedelta(hours=2))
    refusals.count_refusal(partner=PARTNER, reason=Reason.NO_KEY, now=now - timedelta(hours=30))
    response = admin_client.get(reverse("cohorts:import_requests"))
    assert response.status_code == 200
    summary = response.context["refused"]
    assert summary.total == 4
    assert [(row.reason, row.count) for row in summary.rows] == [
        (Reason.UNKNOWN_KEY, 3),
        (Reason.NO_KEY, 1),
    ]
    html = response.content.decode()
    assert "Refused without a valid key in the last 24 h: 4" in html
    assert "Unknown key" in html


def test_the_refused_counts_are_not_on_a_keys_or_a_cohorts_log(admin_client, key_and_secret):
    key, _ = key_and_secret
    response = admin_client.get(reverse("cohorts:import_requests"), {"key": key.pk})
    assert response.context["refused"] is None


def test_a_rate_limited_key_is_told_when_to_come_back(key_and_secret, settings):
    _, secret = key_and_secret
    settings.INBOUND_RATE_LIMIT_PER_HOUR = 1
    assert post(COHORTS, cohort_body(secret)).status_code == 201
    response = post(COHORTS, cohort_body(secret))
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 3600
    reset = int(response["X-RateLimit-Reset"])
    assert abs(reset - timezone.now().timestamp() - retry_after) <= 2


def test_retry_after_is_the_seconds_to_the_windows_end_and_never_zero():
    window = RateWindow(limit=1, count=2, reset=7200)
    assert window.headers(now=3600.5)["Retry-After"] == "3600"
    assert window.headers(now=7199.9)["Retry-After"] == "1"
    assert window.headers(now=7300)["Retry-After"] == "1"
    assert "Retry-After" not in RateWindow(limit=5, count=2, reset=7200).headers(now=3600)
