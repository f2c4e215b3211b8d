"""In a real browser: the sync page's run history refreshes itself when the live run finishes,
without a reload and keeping its filter; the home page and the sync page on a phone.

Skipped with the reason when no Chromium is found (tests/browser/conftest.py).
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.roles import Role
from syncs.models import SyncRun
from tests.base import PASSWORD, make_connection, make_user
from tests.browser.conftest import screenshot
from tests.factories import make_cohort, make_run, make_sync

pytestmark = pytest.mark.browser


def log_in(page, live_server, email):
    page.goto(f"{live_server.url}{reverse('login')}")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def make_sync_with_runs():
    connection = make_connection(name="Braze prod")
    sync = make_sync(cohort=make_cohort(), connection=connection, cadence="hourly", orm=True)
    earlier = timezone.now() - timedelta(hours=1)
    make_run(
        sync,
        queued_at=earlier,
        started_at=earlier,
        finished_at=earlier,
        planned_adds=40,
        added=40,
    )
    running = make_run(
        sync,
        status=SyncRun.Status.RUNNING,
        started_at=timezone.now(),
        planned_adds=300,
        added=100,
    )
    return sync, running


def test_the_history_refreshes_when_the_live_run_finishes(
    page,
    live_server,
    transactional_db,
):
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect
    make_user(Role.VIEWER, email="vic@example.com")
    sync, running = make_sync_with_runs()
    log_in(page, live_server, "vic@example.com")
    page.goto(live_server.url + reverse("syncs:sync_detail", args=[sync.pk]) + "?trigger=manual")
    newest = page.locator("#run-history tbody tr").first
    expect(newest.locator(".badge")).to_have_text("Running")
    page.evaluate("window.notReloaded = true")

    SyncRun.objects.filter(pk=running.pk).update(
        status="succeeded", finished_at=timezone.now(), added=300
    )

    expect(page.locator("#run-progress[data-status=succeeded]")).to_be_visible()
    expect(newest.locator(".badge")).to_have_text("Succeeded")
    expect(page.locator("#run-changes")).to_contain_text(f"Run {running.pk}")
    assert page.evaluate("window.notReloaded") is True
    assert page.url.endswith("?trigger=manual")
    screenshot(page, "sync-page-history-refreshed")


def test_home_and_sync_page_fit_a_phone_with_tables_that_scroll(
    chromium,
    live_server,
    transactional_db,
):
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect
    make_user(Role.VIEWER, email="vic@example.com")
    sync, _ = make_sync_with_runs()
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    phone = context.new_page()
    try:
        log_in(phone, live_server, "vic@example.com")
        expect(phone.locator("#home-syncs")).to_contain_text("Churn → Braze")
        screenshot(phone, "home-phone")
        phone.goto(live_server.url + reverse("syncs:sync_detail", args=[sync.pk]))
        # Every column is there, in a card that scrolls sideways, and the page itself does not.
        expect(phone.locator("#run-history th", has_text="Duration")).to_be_attached()
        widths = phone.evaluate(
            "() => { const card = document.querySelector('#run-history');"
            " return [card.scrollWidth, card.clientWidth, document.documentElement.scrollWidth]; }"
        )
        table_width, card_width, page_width = widths
        assert table_width > card_width
        assert page_width <= 390
        screenshot(phone, "sync-page-phone")
    finally:
        context.close()
