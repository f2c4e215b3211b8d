"""The alert settings page: admins only, validated and audited changes, a webhook URL never
shown back, a test alert end to end, and the deliveries with their failures."""

import pytest
from django.db import connection as db
from django.urls import reverse

from alerts.models import AlertDelivery, AlertSettings
from connections import crypto
from core.models import AuditEntry
from tests.alerts.helpers import configure
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db

SETTINGS = reverse("alerts:settings")
TEST = reverse("alerts:test")
DELIVERIES = reverse("alerts:deliveries")
HOOK = "https://hooks.slack.com/services/T0000/B0000/XXXXsecretXXXX9z9z"
FORM = {
    "email_enabled": "on",
    "email_recipients": "ops@example.com\noncall@example.com",
    "webhook_enabled": "on",
    "webhook_url": HOOK,
    "on_run_failed": "on",
    "on_run_held": "on",
    "on_connection_needs_attention": "on",
    "on_recovery": "on",
    "partial_failure_threshold_pct": "10",
}
PAGES = [("get", SETTINGS), ("post", SETTINGS), ("post", TEST), ("get", DELIVERIES)]


def snapshot():
    row = AlertSettings.load()
    return (
        row.email_enabled,
        row.email_recipients,
        row.webhook_enabled,
        row.encrypted_webhook_url,
        row.on_run_failed,
        row.partial_failure_threshold_pct,
        AuditEntry.objects.count(),
        AlertDelivery.objects.count(),
    )


def test_every_alert_page_requires_login(client):
    for method, url in PAGES:
        response = getattr(client, method)(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_outsiders_get_404_on_every_alert_page(outsider_client):
    for method, url in PAGES:
        assert getattr(outsider_client, method)(url, FORM).status_code == 404, url


@pytest.mark.parametrize("client_fixture", ["marketer_client", "viewer_client"])
def test_marketers_and_viewers_get_403_and_change_nothing(request, client_fixture):
    client = request.getfixturevalue(client_fixture)
    configure(webhook_url=HOOK)
    before = snapshot()
    for method, url in PAGES:
        assert getattr(client, method)(url, FORM).status_code == 403, url
    assert snapshot() == before


def test_only_admins_see_the_alerts_link(admin_client, marketer_client):
    assert SETTINGS in admin_client.get(reverse("home")).content.decode()
    assert SETTINGS not in marketer_client.get(reverse("home")).content.decode()


def test_an_admin_saves_the_settings_and_it_is_audited(admin_client, admin_user):
    response = admin_client.post(SETTINGS, FORM)
    assert response.status_code == 302
    assert response["Location"] == SETTINGS
    row = AlertSettings.load()
    assert row.email_enabled and row.webhook_enabled
    assert row.email_recipients == ["ops@example.com", "oncall@example.com"]
    assert crypto.decrypt(row.encrypted_webhook_url) == HOOK
    assert row.webhook_hint == "9z9z"
    entry = AuditEntry.objects.get(action="alerts.settings_updated")
    assert entry.actor == admin_user
    assert entry.ip == "127.0.0.1"
    assert "webhook_url" in entry.details["changed"]
    assert HOOK not in str(entry.details)


def test_the_webhook_url_is_never_rendered_back_nor_stored_in_clear(admin_client):
    admin_client.post(SETTINGS, FORM)
    html = admin_client.get(SETTINGS).content.decode()
    assert "XXXXsecretXXXX" not in html
    assert "••••9z9z" in html
    with db.cursor() as cursor:
        cursor.execute("SELECT * FROM alerts_alertsettings")
        assert "XXXXsecretXXXX" not in repr(cursor.fetchall())
        cursor.execute("SELECT details FROM core_auditentry")
        assert "XXXXsecretXXXX" not in repr(cursor.fetchall())


def test_leaving_the_webhook_url_blank_keeps_it_and_remove_deletes_it(admin_client):
    admin_client.post(SETTINGS, FORM)
    admin_client.post(SETTINGS, {**FORM, "webhook_url": "", "email_recipients": "a@example.com"})
    row = AlertSettings.load()
    assert crypto.decrypt(row.encrypted_webhook_url) == HOOK
    assert row.email_recipients == ["a@example.com"]
    admin_client.post(
        SETTINGS, {**FORM, "webhook_url": "", "webhook_enabled": "", "remove_webhook": "on"}
    )
    row = AlertSettings.load()
    assert (row.encrypted_webhook_url, row.webhook_hint, row.webhook_enabled) == ("", "", False)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"email_recipients": "ops@example.com, not-an-address"}, "is not an email address"),
        ({"email_recipients": ""}, "Enter at least one recipient"),
        ({"webhook_url": "hooks.slack.com/services/x"}, "must look like https://"),
        ({"webhook_url": "http://hooks.example.com/x"}, "must use https"),
        ({"webhook_url": "https://user:pw@hooks.example.com/x"}, "user name or password"),
        ({"webhook_url": ""}, "Enter the webhook URL to turn webhook alerts on"),
        ({"partial_failure_threshold_pct": "0"}, "greater than or equal to 1"),
        ({"partial_failure_threshold_pct": "101"}, "less than or equal to 100"),
        ({"partial_failure_threshold_pct": "half"}, "Enter a whole number."),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(admin_client, settings, change, error):
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = False
    before = snapshot()
    response = admin_client.post(SETTINGS, {**FORM, **change})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert snapshot() == before


def test_a_test_alert_without_a_channel_says_what_to_do(admin_client):
    response = admin_client.post(TEST, follow=True)
    assert "Turn on email or webhook alerts" in response.content.decode()
    assert not AlertDelivery.objects.exists()


@pytest.mark.usefixtures("rq_redis")
def test_the_test_alert_button_reaches_every_channel(admin_client, admin_user, webhook, mailoutbox):
    admin_client.post(SETTINGS, {**FORM, "webhook_url": webhook.url})
    response = admin_client.post(TEST, follow=True)
    assert "Test alert queued by email and webhook" in response.content.decode()
    html = admin_client.get(DELIVERIES).content.decode()
    assert 'hx-trigger="load delay:2s"' in html  # polls while pending
    assert html.count("Pending") == 2
    assert 'id="messages"' not in html  # "Test alert queued" is still true

    run_jobs()

    [request] = webhook.received
    assert request["json"]["event"] == "test"
    assert admin_user.username in request["json"]["text"]
    [message] = mailoutbox
    assert message.subject == "[cohortsync] Test alert"
    assert message.to == ["ops@example.com", "oncall@example.com"]
    html = admin_client.get(DELIVERIES).content.decode()
    assert "hx-trigger" not in html  # nothing pending: polling stops
    # ... and the message that the test alert was queued goes with the last poll.
    assert '<ul class="messages" id="messages" hx-swap-oob="true"></ul>' in html
    assert html.count(">Sent<") == 2
    assert AuditEntry.objects.filter(action="alerts.test_sent", actor=admin_user).exists()


@pytest.mark.usefixtures("rq_redis")
def test_a_failed_delivery_is_shown_with_its_error_and_not_the_url(admin_client, webhook):
    admin_client.post(
        SETTINGS, {**FORM, "email_enabled": "", "email_recipients": "", "webhook_url": webhook.url}
    )
    webhook.statuses.extend([500, 500, 500])
    admin_client.post(TEST)
    run_jobs()
    html = admin_client.get(SETTINGS).content.decode()
    assert "1 of the alerts below could not be delivered." in html
    assert '<tr class="delivery failed">' in html
    assert "The webhook answered HTTP 500: invalid_token" in html
    assert "3 attempts" in html
    assert "s3cr3tW3bh00kT0k3n" not in html


def test_the_page_costs_the_same_queries_with_few_or_many_deliveries(
    admin_client, django_assert_max_num_queries
):
    def deliveries(n):
        AlertDelivery.objects.bulk_create(
            AlertDelivery(channel="webhook", event="test", title=f"Test {i}", text="t")
            for i in range(n)
        )

    deliveries(2)
    with django_assert_max_num_queries(10) as few:
        admin_client.get(SETTINGS)
    deliveries(40)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert admin_client.get(SETTINGS).status_code == 200
    with django_assert_max_num_queries(6):
        admin_client.get(DELIVERIES)
