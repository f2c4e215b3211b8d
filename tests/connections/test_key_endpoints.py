"""Beside a data-import key, what to tell its partner: each endpoint's full URL, where the key
goes, a copy button for each, and an example request (curl) that works as shown, run by the
shell against a live server. The key itself is shown only when it is generated."""

import html
import os
import subprocess

import pytest
from django.urls import reverse

from cohorts.models import AmplitudeBatch, Cohort, CohortMember
from connections.key_endpoints import KEY_VARIABLE, endpoints_for
from connections.keys import generate_import_key, revoke_import_key
from connections.models import ImportKey

SITE = "https://cohorts.example.com"


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.SITE_URL = SITE


def key_page(client, key):
    return html.unescape(
        client.get(reverse("connections:key_detail", args=[key.pk])).content.decode()
    )


@pytest.mark.django_db
def test_an_amplitude_key_shows_the_webhook_then_the_braze_compatible_endpoints(admin_client):
    key, raw = generate_import_key(partner="amplitude", name="Amplitude", actor=None)
    page = key_page(admin_client, key)
    assert f'value="{SITE}/partners/amplitude/webhook"' in page
    assert 'value="Header Authorization: Bearer $COHORTSYNC_IMPORT_KEY"' in page
    assert f"{SITE}/partners/amplitude/cohorts" in page
    assert f"{SITE}/partners/amplitude/cohorts/users" in page
    assert "Body field client_secret" in page
    assert page.index("amplitude/webhook") < page.index("amplitude/cohorts")
    for slug in ("amplitude-webhook", "cohorts", "cohort-users"):
        for part in ("url", "key-location", "curl"):
            assert f'data-copy-target="{part}-{slug}"' in page
            assert f'id="{part}-{slug}"' in page
    assert "curl -X POST https://cohorts.example.com/partners/amplitude/webhook" in page
    assert raw not in page


@pytest.mark.django_db
def test_another_partners_key_opens_the_braze_compatible_api_only(admin_client):
    key, raw = generate_import_key(partner="appsflyer", name="AppsFlyer", actor=None)
    page = key_page(admin_client, key)
    assert f"{SITE}/partners/appsflyer/cohorts/users" in page
    assert "webhook" not in page
    assert raw not in page


@pytest.mark.django_db
def test_the_generated_key_is_shown_once_next_to_the_endpoints(admin_client):
    response = admin_client.post(
        reverse("connections:key_create"), {"partner": "amplitude", "name": "Amplitude prod"}
    )
    page = html.unescape(response.content.decode())
    assert f"{SITE}/partners/amplitude/webhook" in page
    raw = page.split('id="import-key" value="')[1].split('"')[0]
    assert page.count(raw) == 1
    assert raw not in key_page(admin_client, ImportKey.objects.get())


@pytest.mark.django_db
def test_a_revoked_key_lists_no_endpoint(admin_client):
    key, _ = generate_import_key(partner="amplitude", name="Amplitude", actor=None)
    revoke_import_key(key=key, actor=None)
    assert 'id="key-endpoints"' not in key_page(admin_client, key)


@pytest.mark.usefixtures("rq_redis")
def test_each_example_request_works_as_shown(live_server, settings, transactional_db):
    settings.SITE_URL = live_server.url
    key, raw = generate_import_key(partner="amplitude", name="Amplitude", actor=None)
    statuses = []
    for endpoint in endpoints_for(key):
        done = subprocess.run(
            ["bash", "-c", endpoint.curl + " -s -o /dev/null -w '%{http_code}'"],
            env={**os.environ, KEY_VARIABLE: raw},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        statuses.append((endpoint.slug, done.stdout))
    assert statuses == [("amplitude-webhook", "200"), ("cohorts", "201"), ("cohort-users", "201")]
    assert AmplitudeBatch.objects.get().cohort.partner_cohort_id == "7khm89cz"
    assert Cohort.objects.filter(partner_cohort_id="coh_8f2a", name="Churn risk (Q3)").exists()
    assert set(CohortMember.objects.values_list("value", flat=True)) == {"u-1001", "u-1002"}
