"""An admin, in a real browser: sets up webhook alerts, sends a test alert, and watches the
deliveries update themselves, a failure shown with its error."""

import pytest

from alerts import queue
from core.roles import Role
from tests.alerts.helpers import WebhookReceiver
from tests.base import PASSWORD, make_user
from tests.browser.conftest import screenshot
from tests.jobs import run_jobs

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("rq_redis")]


@pytest.fixture
def webhook(monkeypatch):
    # Retries without waiting, so one burst of the worker runs every attempt.
    monkeypatch.setattr(queue, "RETRY_BACKOFF_SECONDS", [0, 0])
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


def test_admin_sets_up_a_webhook_and_sends_a_test_alert(
    page,
    live_server,
    webhook,
    transactional_db,
):
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect
    make_user(Role.ADMIN, email="ada@example.com")
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "ada@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.click("text=Alerts")
    page.check("#id_webhook_enabled")
    page.fill("#id_webhook_url", webhook.url)
    page.click("button:has-text('Save')")
    expect(page.locator(".messages")).to_contain_text("Alert settings saved.")
    assert "s3cr3tW3bh00kT0k3n" not in page.content()
    expect(page.locator("main")).to_contain_text("Stored as ••••0k3n")

    page.click("#send-test-alert")
    expect(page.locator("#alert-deliveries")).to_contain_text("Pending")
    url_before = page.url
    run_jobs()  # the worker posts to the webhook; the table polls for the outcome
    expect(page.locator("#alert-deliveries .badge")).to_have_text("Sent")
    expect(page.locator("#messages")).to_be_empty()  # no "Test alert queued" beside "Sent"
    assert page.url == url_before
    assert webhook.received[0]["json"]["event"] == "test"

    webhook.statuses.extend([500, 500, 500])
    page.click("#send-test-alert")
    expect(page.locator("#alert-deliveries")).to_contain_text("Pending")  # queued by the click
    run_jobs()
    expect(page.locator("#alert-deliveries")).to_contain_text(
        "The webhook answered HTTP 500: invalid_token"
    )
    expect(page.locator("#alert-deliveries")).to_contain_text(
        "1 of the alerts below could not be delivered."
    )
    assert "s3cr3tW3bh00kT0k3n" not in page.content()
    screenshot(page, "alerts-test-delivery-failed")
