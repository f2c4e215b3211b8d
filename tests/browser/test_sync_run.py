"""A marketer, in a real browser: creates a sync of a 300-member cohort to the Braze simulator
through the form's steps, presses Run now, and watches the run finish on the page without
reloading it."""

import pytest

from core.roles import Role
from syncs.models import SyncRun
from tests.base import PASSWORD, make_user
from tests.browser.conftest import screenshot
from tests.factories import make_cohort, make_simulator_connection
from tests.jobs import run_jobs

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("rq_redis")]


def test_marketer_creates_a_sync_runs_it_and_watches_it_finish(
    page, live_server, sandbox, transactional_db
):
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect
    make_user(Role.MARKETER, email="mia@example.com")
    make_cohort(members=300)
    make_simulator_connection(sandbox)

    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "mia@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".who")).to_contain_text("mia@example.com · marketer")

    page.click("nav >> text=Syncs")
    page.click("text=New sync")
    page.select_option("#id_cohort", label="Churn risk (300 members)")
    page.click("#next")
    page.select_option("#id_connection", label="Braze sandbox (Braze)")
    page.click("#next")
    page.check("input[name=primary_identifier][value=external_id]")
    page.click("#next")
    page.check("input[name=cadence][value=once]")
    page.click("#next")
    page.fill("#id_name", "Churn → Braze")
    screenshot(page, "sync-form")
    page.click("button:has-text('Create sync')")
    expect(page.locator("h1")).to_contain_text("Churn → Braze")

    page.click("#run-now")
    progress = page.locator("#run-progress")
    expect(progress).to_have_attribute("data-status", "queued")
    url_before = page.url
    run_jobs()  # the worker sends the cohort; the page polls for the outcome
    expect(page.locator("#run-progress[data-status=succeeded]")).to_be_visible()
    expect(progress.locator(".added")).to_have_text("300")
    assert page.url == url_before  # no reload
    assert SyncRun.objects.get().added == 300
    screenshot(page, "sync-page-run-finished")

    progress.locator("a").first.click()
    expect(page.locator(".run-counts .added")).to_have_text("300")
    expect(page.locator(".count-check")).to_contain_text(
        "Planned 300 = 300 added + 0 removed + 0 failed + 0 skipped"
    )
    screenshot(page, "sync-run-done")
