"""Partner endpoints under the egress policy (core/egress.py), with production settings: refused
when an admin saves them, refused again at every request (an internal service hears nothing),
redirects not followed, the allow-list for a private partner proxy, and a partner's message
kept short and shown escaped. Development mode still reaches the simulator on 127.0.0.1."""

import pytest
from django.urls import reverse

from connections import services
from connections.models import Connection, ConnectionCheck
from connections.partners import PARTNERS
from connections.partners.base import ConfigError, Recipient
from connections.partners.http import MESSAGE_CHARS, PartnerError, call
from connections.sandbox import DEMO_BRAZE_KEY
from core.egress_client import EgressClient
from tests.base import make_connection
from tests.egress_servers import (
    ISSUE_LIST,
    REDIRECT_FORMS,
    AnswerServer,
    servers,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("egress_in_production")]

SECRET = "braze-rest-key-7777-abcd"
BRAZE_FORM = {
    "kind": "braze",
    "name": "Braze custom",
    "secret": SECRET,
    "instance": "custom",
    "membership_mode": "array",
    "array_attribute": "cohortsync_cohorts",
    "default_identifier": "external_id",
    "alias_label": "",
    "update_existing_only": "on",
    "objects_per_request": "75",
    "rate_limit_requests": "3000",
    "rate_limit_seconds": "3",
}


def _braze(endpoint):
    return PARTNERS["braze"].parse_config({"instance": "custom", "custom_endpoint": endpoint})


def _stored(endpoint, settings, secret=SECRET):
    """A connection saved in development mode (as an old row, or before the upgrade)."""
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
    connection = make_connection(endpoint=endpoint, secret=secret)
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = False
    return connection


def _check(connection):
    check = ConnectionCheck.objects.create(connection=connection)
    services.run_connection_check(check.pk)
    check.refresh_from_db()
    connection.refresh_from_db()
    return check


# When an admin saves


@pytest.mark.parametrize("url", ISSUE_LIST + REDIRECT_FORMS)
def test_every_internal_address_is_refused_as_a_partner_endpoint(url):
    with pytest.raises(
        ConfigError, match=r"The custom REST endpoint (is not allowed|must use https)"
    ) as braze:
        _braze(url)
    assert braze.value.field == "custom_endpoint"
    with pytest.raises(
        ConfigError, match=r"The API host (is not allowed|must use https)"
    ) as appsflyer:
        PARTNERS["appsflyer"].parse_config(
            {"app_id": "com.example.app", "platform": "android", "api_host": url}
        )
    assert appsflyer.value.field == "api_host"


@pytest.mark.parametrize("url", ISSUE_LIST)
def test_the_connection_form_says_why_and_saves_nothing(admin_client, url):
    response = admin_client.post(
        reverse("connections:create"), {**BRAZE_FORM, "custom_endpoint": url}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "The custom REST endpoint is not allowed:" in html
    assert "cloud metadata" in html or "outbound calls go only to public addresses" in html
    assert not Connection.objects.exists()


def test_the_connection_form_checks_where_the_name_resolves_now(admin_client, dns):
    dns({"partner.test": ["93.184.216.34", "10.0.0.5"]})
    form = {**BRAZE_FORM, "custom_endpoint": "https://partner.test"}
    response = admin_client.post(reverse("connections:create"), form)
    assert "partner.test is 10.0.0.5, a private address" in response.content.decode()
    assert not Connection.objects.exists()
    dns({"partner.test": ["93.184.216.34"]})
    assert admin_client.post(reverse("connections:create"), form).status_code == 302
    assert Connection.objects.get().get_config().rest_endpoint == "https://partner.test"


# At every request


def test_a_name_that_turns_internal_after_saving_is_refused_at_request_time(
    admin_client, dns, internal
):
    endpoint = f"https://partner.test:{internal.port}"
    dns({"partner.test": ["93.184.216.34"]})
    form = {**BRAZE_FORM, "custom_endpoint": endpoint}
    assert admin_client.post(reverse("connections:create"), form).status_code == 302
    connection = Connection.objects.get()

    dns({"partner.test": ["127.0.0.1"]})  # the DNS answer changes
    check = _check(connection)
    assert check.status == ConnectionCheck.Status.UNREACHABLE
    assert check.message.startswith(f"Refused to call partner.test:{internal.port}:")
    assert "partner.test is 127.0.0.1, a loopback address" in check.message
    assert internal.accepted == 0


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_stored_loopback_endpoint_reaches_nothing_in_production(settings, internal, scheme):
    # Saved in development mode; in production its config no longer loads, so nothing is sent.
    connection = _stored(f"{scheme}://127.0.0.1:{internal.port}", settings)
    check = _check(connection)
    assert check.status == ConnectionCheck.Status.FAILED
    assert "The custom REST endpoint" in check.message
    assert internal.accepted == 0


def test_every_loopback_notation_is_refused_by_call_and_by_a_runs_client(internal):
    port = internal.port
    urls = [
        f"https://127.0.0.1:{port}",
        f"https://0x7f000001:{port}",
        f"https://2130706433:{port}",
        f"https://[::ffff:127.0.0.1]:{port}",
        f"https://localhost:{port}",
    ]
    for url in urls:
        with pytest.raises(PartnerError, match="Refused to call") as refused:
            call("POST", f"{url}/users/track", secret=SECRET, payload={})
        assert refused.value.unreachable and not refused.value.retryable
        # The engine passes the client it keeps for a run, shared by its sending threads.
        with EgressClient() as client, pytest.raises(PartnerError, match="Refused to call"):
            call("POST", f"{url}/users/track", secret=SECRET, payload={}, client=client)
    assert internal.accepted == 0


def test_a_batch_to_a_refused_address_stops_instead_of_retrying(settings, internal, dns):
    dns({"partner.test": ["93.184.216.34"]})
    connection = make_connection(endpoint=f"https://partner.test:{internal.port}", secret=SECRET)
    dns({"partner.test": ["10.0.0.5", "127.0.0.1"]})
    partner = connection.partner(connection.get_config(), SECRET)
    with EgressClient() as client, pytest.raises(PartnerError) as refused:
        partner.send_batch(
            cohort_label="VIP",
            add=[Recipient(1, "external_id", "u1")],
            remove=[],
            options={},
            client=client,
        )
    assert not refused.value.retryable
    assert "10.0.0.5, a private address" in refused.value.message
    assert internal.accepted == 0


@pytest.mark.usefixtures("trusted_tls")
@pytest.mark.parametrize("kind", ["braze", "appsflyer"])
@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{port}/",
        "https://127.0.0.1:{port}/users/track",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://0x7f000001:{port}/",
        "http://2130706433:{port}/",
        "http://localhost:{port}/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.1:8443/",
        "http://[fd00::1]/",
    ],
)
def test_a_redirect_from_an_allowed_endpoint_is_not_followed(settings, internal, kind, location):
    server = AnswerServer(307, headers={"Location": location.format(port=internal.port)})
    settings.COHORTSYNC_EGRESS_ALLOW = ["localhost"]  # the redirecting server is allowed
    with servers(server):
        partner_class = PARTNERS[kind]
        config = partner_class.parse_config(partner_class.simulator_config(server.url))
        partner = partner_class(config, SECRET)
        with pytest.raises(PartnerError, match="a redirect, which cohortsync does not follow"):
            partner.check()
        with EgressClient() as client, pytest.raises(PartnerError) as refused:
            partner.send_batch(
                cohort_label="VIP",
                add=[Recipient(1, "external_id" if kind == "braze" else "gaid", "u1")],
                remove=[],
                options={"import_key": "vip-1234"},
                client=client,
            )
    assert refused.value.status == 307 and not refused.value.retryable
    assert len(server.requests) == 2
    assert internal.accepted == 0


@pytest.mark.usefixtures("trusted_tls")
def test_a_redirect_fails_the_connection_check_with_a_clear_message(settings, internal):
    server = AnswerServer(307, headers={"Location": f"http://127.0.0.1:{internal.port}/"})
    settings.COHORTSYNC_EGRESS_ALLOW = ["localhost"]
    with servers(server):
        check = _check(make_connection(endpoint=server.url, secret=SECRET))
    assert check.status == ConnectionCheck.Status.FAILED
    assert f"localhost:{server.port} answered HTTP 307, a redirect" in check.message
    assert internal.accepted == 0


@pytest.mark.usefixtures("trusted_tls")
def test_the_allow_list_lets_a_partner_proxy_on_a_private_address_through(settings, admin_client):
    server = AnswerServer(201, body={"message": "success"})
    with servers(server):
        with pytest.raises(ConfigError, match="a loopback address"):
            _braze(server.url)
        settings.COHORTSYNC_EGRESS_ALLOW = ["127.0.0.0/8", "::1/128"]
        form = {**BRAZE_FORM, "custom_endpoint": server.url}
        assert admin_client.post(reverse("connections:create"), form).status_code == 302
        check = _check(Connection.objects.get())
    assert check.status == ConnectionCheck.Status.OK
    assert server.requests == ["POST /users/track"]


def test_a_partner_message_is_kept_short_redacted_and_shown_escaped(settings, viewer_client):
    message = "<script>alert(1)</script> " + "x" * 80 + f" {SECRET} " + "y" * 500
    server = AnswerServer(401, body={"message": message}, tls=False)
    with servers(server):
        connection = _stored(server.url, settings)
        settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
        check = _check(connection)
    assert check.status == ConnectionCheck.Status.REFUSED
    assert connection.last_error == check.message
    assert len(connection.last_error) == MESSAGE_CHARS
    assert SECRET[:8] not in connection.last_error
    assert connection.last_error.startswith("<script>alert(1)</script> xxx")
    html = viewer_client.get(reverse("connections:detail", args=[connection.pk])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html


def test_development_mode_still_reaches_the_simulator_on_the_loopback(settings, sandbox):
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
    check = _check(make_connection(endpoint=sandbox.url, secret=DEMO_BRAZE_KEY))
    assert check.status == ConnectionCheck.Status.OK
