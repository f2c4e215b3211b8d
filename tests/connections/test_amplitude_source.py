"""An Amplitude source connection: its two keys stored encrypted and never shown, "Test
connection" listing the project's cohorts from the simulator over real HTTP, and a source never
offered as a sync's destination (wizard, API, services)."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from connections import crypto
from connections.models import Connection, ConnectionCheck
from connections.partners.amplitude.config import AmplitudeConfig
from connections.partners.base import ConfigError
from connections.sandbox import DEMO_AMPLITUDE_API_KEY, DEMO_AMPLITUDE_SECRET_KEY
from core.models import AuditEntry
from syncs.models import Sync
from syncs.services import create_sync
from tests.api.helpers import api_client_for
from tests.base import make_connection
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db

API_KEY = "amp-api-key-0000-aaaa"
SECRET_KEY = "amp-secret-key-0000-7b7b"
FORM = {
    "kind": "amplitude",
    "name": "Amplitude prod",
    "api_key": API_KEY,
    "secret_key": SECRET_KEY,
    "region": "eu",
    "project_name": "Mobile app",
    "api_host": "",
}


def make_source(sandbox=None, *, api_key=DEMO_AMPLITUDE_API_KEY, secret_key=None, **config):
    secret = json.dumps({"api_key": api_key, "secret_key": secret_key or DEMO_AMPLITUDE_SECRET_KEY})
    endpoint = sandbox.url if sandbox is not None else "https://amplitude.com"
    return make_connection(
        "amplitude", name="Amplitude", endpoint=endpoint, secret=secret, **config
    )


# Credentials: both keys in one encrypted secret, never shown back


def test_an_admin_adds_a_source_with_both_keys_encrypted_and_audited(admin_client):
    response = admin_client.post(reverse("connections:create"), FORM)
    connection = Connection.objects.get(name="Amplitude prod")
    assert response.status_code == 302
    assert API_KEY not in connection.encrypted_secret
    assert SECRET_KEY not in connection.encrypted_secret
    assert json.loads(crypto.decrypt(connection.encrypted_secret)) == {
        "api_key": API_KEY,
        "secret_key": SECRET_KEY,
    }
    # The hint is the secret key's end, like every credential's, never the packed JSON's.
    assert connection.secret_hint == "7b7b"
    config = connection.get_config()
    assert isinstance(config, AmplitudeConfig)
    assert config.base_url == "https://analytics.eu.amplitude.com"
    entry = AuditEntry.objects.get(action="connection.created")
    assert entry.details["kind"] == "amplitude"
    assert SECRET_KEY not in json.dumps(entry.details)


def test_the_keys_are_never_rendered_back(admin_client):
    admin_client.post(reverse("connections:create"), FORM)
    connection = Connection.objects.get(name="Amplitude prod")
    for url in (
        reverse("connections:detail", args=[connection.pk]),
        reverse("connections:edit", args=[connection.pk]),
        reverse("connections:list"),
    ):
        html = admin_client.get(url).content.decode()
        assert API_KEY not in html and SECRET_KEY not in html
        assert "••••7b7b" in html


def test_one_key_alone_is_refused_and_changes_nothing(admin_client):
    admin_client.post(reverse("connections:create"), FORM)
    connection = Connection.objects.get(name="Amplitude prod")
    stored = connection.encrypted_secret
    response = admin_client.post(
        reverse("connections:edit", args=[connection.pk]),
        {**FORM, "name": "Renamed", "api_key": "", "secret_key": "amp-secret-new-0000-1111"},
    )
    assert response.status_code == 200
    assert "Enter the API key and Secret key together" in response.content.decode()
    connection.refresh_from_db()
    assert (connection.name, connection.encrypted_secret) == ("Amplitude prod", stored)


def test_leaving_both_keys_blank_keeps_them(admin_client):
    admin_client.post(reverse("connections:create"), FORM)
    connection = Connection.objects.get(name="Amplitude prod")
    admin_client.post(
        reverse("connections:edit", args=[connection.pk]),
        {**FORM, "name": "Renamed", "api_key": "", "secret_key": ""},
    )
    connection.refresh_from_db()
    assert connection.name == "Renamed"
    assert json.loads(crypto.decrypt(connection.encrypted_secret))["secret_key"] == SECRET_KEY


def test_a_new_source_needs_both_keys(admin_client):
    response = admin_client.post(reverse("connections:create"), {**FORM, "secret_key": ""})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not Connection.objects.exists()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"region": "asia", "project_name": "p"}, "region"),
        ({"region": "us", "project_name": "  "}, "project_name"),
        ({"region": "us", "project_name": "p", "api_host": "https://amplitude.com/api/3"}, None),
    ],
)
def test_a_bad_config_is_refused_with_its_field(config, field):
    with pytest.raises(ConfigError) as refused:
        AmplitudeConfig(**config)
    assert refused.value.field == (field or "api_host")


def test_the_region_decides_the_api_host():
    assert AmplitudeConfig("us", "p").base_url == "https://amplitude.com"
    assert AmplitudeConfig("eu", "p").base_url == "https://analytics.eu.amplitude.com"


# Test connection: the project's cohorts, from the simulator over real HTTP


def _test(admin_client, connection):
    admin_client.post(reverse("connections:test", args=[connection.pk]), HTTP_HX_REQUEST="true")
    run_jobs()
    check = ConnectionCheck.objects.get(connection=connection)
    html = admin_client.get(reverse("connections:check", args=[connection.pk, check.pk]))
    connection.refresh_from_db()
    return check, html.content.decode(), connection


@pytest.mark.usefixtures("rq_redis")
def test_the_check_counts_and_names_the_projects_cohorts(admin_client, sandbox):
    sandbox.state.amplitude_cohorts = [
        {"id": "7khm89cz", "name": "Power users", "size": 1200, "archived": False},
        {"id": "a1b2c3d4", "name": "Churn risk", "size": 40, "archived": False},
    ]
    check, html, connection = _test(admin_client, make_source(sandbox))
    assert check.status == ConnectionCheck.Status.OK
    assert check.message == (
        "Amplitude accepted the keys: Sandbox project has 2 cohorts: Power users, Churn risk."
    )
    assert connection.state == Connection.State.HEALTHY
    assert "Power users, Churn risk" in html
    assert sandbox.state.stats()["requests"]["GET /api/3/cohorts"] == {"200": 1}


@pytest.mark.usefixtures("rq_redis")
def test_a_project_without_cohorts_says_so(admin_client, sandbox):
    check, _, _ = _test(admin_client, make_source(sandbox))
    assert check.message == "Amplitude accepted the keys: Sandbox project has no cohorts yet."


@pytest.mark.usefixtures("rq_redis")
def test_a_wrong_secret_key_needs_attention_and_is_not_shown(admin_client, sandbox):
    wrong = "amp-secret-nobody-knows-0000"
    check, html, connection = _test(admin_client, make_source(sandbox, secret_key=wrong))
    assert check.status == ConnectionCheck.Status.REFUSED
    assert connection.state == Connection.State.NEEDS_ATTENTION
    assert "Invalid API key or secret key" in connection.last_error
    assert wrong not in html


# A source is never a sync's destination


def test_the_choose_page_lists_sources_apart_from_destinations(admin_client):
    html = admin_client.get(reverse("connections:create")).content.decode()
    destinations, sources = html.split('id="destination-partners"')[1].split('id="source-partners"')
    assert "?kind=braze" in destinations and "?kind=appsflyer" in destinations
    assert "?kind=amplitude" not in destinations
    assert "?kind=amplitude" in sources and "?kind=braze" not in sources


def test_the_wizard_does_not_offer_a_source(marketer_client, cohort):
    braze = make_connection(name="Braze prod")
    source = make_source()
    html = marketer_client.get(
        reverse("syncs:sync_create"), {"cohort": cohort.pk, "step": "destination"}
    ).content.decode()
    assert "Braze prod (Braze)" in html
    assert f'value="{source.pk}"' not in html
    tampered = marketer_client.get(
        reverse("syncs:sync_create"),
        {"cohort": cohort.pk, "connection": source.pk, "step": "identifier"},
    )
    assert tampered.context["state"].step == "destination"
    assert "Select a valid choice" in tampered.content.decode()
    assert braze.pk != source.pk


def test_the_api_refuses_a_sync_to_a_source(marketer, cohort):
    source = make_source()
    response = api_client_for(marketer).post(
        "/syncs",
        {
            "name": "Churn → Amplitude",
            "cohort_id": cohort.pk,
            "connection_id": source.pk,
            "identifier_mapping": ["external_id"],
            "cadence": {"kind": "once"},
        },
    )
    assert response.status_code == 400
    assert "a sync can only send to a destination" in response.json()["errors"]["connection"][0]
    assert not Sync.objects.exists()


def test_the_api_says_a_source_is_a_source(viewer):
    source = make_source()
    read = api_client_for(viewer).get(f"/connections/{source.pk}")
    assert read.json()["direction"] == "source"
    assert read.json()["secret"] == "••••-key"
    assert DEMO_AMPLITUDE_SECRET_KEY not in read.content.decode()


def test_the_service_refuses_a_sync_to_a_source(cohort):
    with pytest.raises(ValidationError, match="Amplitude source"):
        create_sync(
            name="Churn → Amplitude",
            cohort=cohort,
            connection=make_source(),
            identifier_mapping=["external_id"],
            cadence={"kind": "once"},
            actor=None,
        )
    assert not Sync.objects.exists()


def test_with_only_a_source_the_home_page_says_to_connect_a_destination(marketer_client):
    make_source()
    html = marketer_client.get(reverse("home")).content.decode()
    assert "Nothing to sync yet" in html
    assert reverse("syncs:sync_create") not in html


def test_a_source_is_deleted_like_a_connection_without_syncs(admin_client):
    source = make_source()
    url = reverse("connection_delete", args=[source.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"confirm_name": "Amplitude"})
    assert response.status_code == 302
    assert not Connection.objects.filter(pk=source.pk).exists()
    assert AuditEntry.objects.filter(action="connection.deleted").exists()


@pytest.mark.usefixtures("rq_redis")
def test_the_timeline_shows_the_sources_tests_and_its_import_keys(admin_client, sandbox):
    from connections.keys import generate_import_key

    source = make_source(sandbox)
    _test(admin_client, source)
    generate_import_key(partner="amplitude", name="Amplitude webhook", actor=None)
    html = admin_client.get(reverse("syncs:connection_timeline", args=[source.pk])).content
    text = html.decode()
    assert "Sandbox project has no cohorts yet" in text
    assert "Data-import key generated" in text
