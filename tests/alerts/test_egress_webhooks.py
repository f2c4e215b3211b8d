"""Alert webhooks under the egress policy (core/egress.py), with production settings: refused
when an admin saves them, refused again at every delivery (an internal service hears nothing),
redirects not followed, the allow-list, and a failed delivery's answer kept short and shown
escaped. No message ever carries the webhook's path, its secret."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from alerts import channels, services
from alerts.models import AlertDelivery, AlertSettings
from tests.alerts.helpers import configure
from tests.egress_servers import (
    ISSUE_LIST,
    REDIRECT_FORMS,
    AnswerServer,
    servers,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("egress_in_production")]

SETTINGS = reverse("alerts:settings")
PATH = "/services/T0001/B0002/s3cr3tW3bh00kT0k3n"
FORM = {
    "webhook_enabled": "on",
    "on_run_failed": "on",
    "on_run_held": "on",
    "on_connection_needs_attention": "on",
    "on_recovery": "on",
}


def _stored(url, settings):
    """A webhook saved in development mode (an old row, or before the upgrade)."""
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
    configure(webhook_url=url)
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = False


def _deliver(*, last_attempt=False):
    delivery = AlertDelivery.objects.create(
        channel=AlertDelivery.Channel.WEBHOOK,
        event=AlertDelivery.Event.TEST,
        title="Test alert",
        text="A test.",
    )
    services.deliver(delivery.pk, last_attempt=last_attempt)
    delivery.refresh_from_db()
    return delivery


# When an admin saves


@pytest.mark.parametrize("url", ISSUE_LIST + REDIRECT_FORMS)
def test_every_internal_address_is_refused_as_a_webhook(url):
    with pytest.raises(ValidationError) as refused:
        services.validate_webhook_url(url + PATH)
    [message] = refused.value.messages
    assert "The webhook URL is not allowed" in message or "must use https" in message
    assert "s3cr3t" not in message


@pytest.mark.parametrize("url", ISSUE_LIST)
def test_the_alerts_form_says_why_and_stores_nothing(admin_client, url):
    response = admin_client.post(SETTINGS, {**FORM, "webhook_url": url + PATH})
    assert response.status_code == 200
    html = response.content.decode()
    assert "The webhook URL is not allowed:" in html
    assert "s3cr3t" not in html
    assert not AlertSettings.load().has_webhook


def test_saving_checks_where_the_name_resolves_now(dns):
    dns({"hooks.partner.test": ["93.184.216.34", "10.0.0.5"]})
    with pytest.raises(ValidationError, match=r"hooks.partner.test is 10.0.0.5, a private"):
        configure(webhook_url=f"https://hooks.partner.test{PATH}")
    dns({"hooks.partner.test": ["93.184.216.34"]})
    assert configure(webhook_url=f"https://hooks.partner.test{PATH}").has_webhook


# At every delivery


def test_a_stored_loopback_webhook_reaches_nothing_in_production(settings, internal):
    _stored(f"http://127.0.0.1:{internal.port}{PATH}", settings)
    delivery = _deliver()
    assert delivery.status == AlertDelivery.Status.FAILED  # not retried: waiting will not help
    assert delivery.error.startswith("The webhook's address is not allowed: ")
    assert "must use https" in delivery.error
    assert internal.accepted == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:{port}",
        "https://0x7f000001:{port}",
        "https://2130706433:{port}",
        "https://[::ffff:127.0.0.1]:{port}",
        "https://localhost:{port}",
    ],
)
def test_every_loopback_notation_is_refused_when_posting(internal, url):
    with pytest.raises(channels.DeliveryError, match="address is not allowed") as refused:
        channels.post_webhook(url.format(port=internal.port) + PATH, {"text": "hi"})
    assert not refused.value.retryable
    assert "s3cr3t" not in refused.value.message
    assert internal.accepted == 0


def test_a_name_that_turns_internal_after_saving_is_refused_at_delivery(dns, internal):
    dns({"hooks.partner.test": ["93.184.216.34"]})
    configure(webhook_url=f"https://hooks.partner.test:{internal.port}{PATH}")
    dns({"hooks.partner.test": ["127.0.0.1"]})  # the DNS answer changes
    delivery = _deliver()
    assert delivery.status == AlertDelivery.Status.FAILED
    assert "hooks.partner.test is 127.0.0.1, a loopback address" in delivery.error
    assert "s3cr3t" not in delivery.error
    assert internal.accepted == 0


@pytest.mark.usefixtures("trusted_tls")
@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{port}/",
        "https://127.0.0.1:{port}" + PATH,
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://2130706433:{port}/",
        "http://localhost:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1:8443/",
    ],
)
def test_a_redirect_from_an_allowed_webhook_is_not_followed(settings, internal, location):
    server = AnswerServer(307, headers={"Location": location.format(port=internal.port)})
    settings.COHORTSYNC_EGRESS_ALLOW = ["localhost"]  # the redirecting server is allowed
    with servers(server):
        configure(webhook_url=server.url + PATH)
        delivery = _deliver()
    assert delivery.status == AlertDelivery.Status.FAILED
    assert delivery.error.startswith("The webhook answered HTTP 307, a redirect, which is not")
    assert server.requests == [f"POST {PATH}"]
    assert internal.accepted == 0


@pytest.mark.usefixtures("trusted_tls")
def test_the_allow_list_lets_a_webhook_on_a_private_address_through(settings):
    server = AnswerServer(200, body="ok")
    with servers(server):
        with pytest.raises(ValidationError, match="a loopback address"):
            configure(webhook_url=server.url + PATH)
        settings.COHORTSYNC_EGRESS_ALLOW = ["127.0.0.0/8", "::1/128"]
        configure(webhook_url=server.url + PATH)
        delivery = _deliver()
    assert delivery.status == AlertDelivery.Status.SENT
    assert server.requests == [f"POST {PATH}"]


def test_a_failed_answer_is_kept_short_and_shown_escaped(settings, admin_client):
    body = "<script>alert(1)</script> " + "z" * 60 + f" see {PATH} " + "w" * 500
    server = AnswerServer(500, body=body, tls=False)
    with servers(server):
        _stored(server.url + PATH, settings)
        settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
        delivery = _deliver(last_attempt=True)
    prefix = "The webhook answered HTTP 500: "
    assert delivery.error.startswith(prefix + "<script>alert(1)</script> zzz")
    assert len(delivery.error) == len(prefix) + channels.ANSWER_CHARS
    assert "s3cr3t" not in delivery.error
    html = admin_client.get(SETTINGS).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; zzz" in html
    assert "<script>alert(1)" not in html
