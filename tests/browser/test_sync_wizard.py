"""A marketer, in a real browser, creates a sync through the steps and sees the preview: how many
members have each identifier, what the first run adds and skips, in how many requests; Back,
reload and the browser's own Back button keep the answers. Then edits it with the same preview."""

import pytest

from cohorts.membership import Identity
from core.roles import Role
from syncs.models import Sync
from tests.base import PASSWORD, make_connection, make_user
from tests.browser.conftest import screenshot
from tests.factories import make_cohort

pytestmark = [pytest.mark.browser]


def test_a_marketer_creates_a_sync_through_the_steps_and_sees_the_preview(
    page, live_server, transactional_db
):
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect
    make_user(Role.MARKETER, email="mia@example.com")
    # 50 external ids (40 with a Braze id too), 30 devices with a Braze id, 20 with nothing usable.
    cohort = make_cohort(
        members=[
            *(
                Identity("external_id", f"u{n}", extras=(("braze_id", f"b{n}"),) if n < 40 else ())
                for n in range(50)
            ),
            *(Identity("device_id", f"d{n}", extras=(("braze_id", f"bd{n}"),)) for n in range(30)),
            *(Identity("device_id", f"x{n}") for n in range(20)),
        ]
    )

    make_connection(name="Braze prod", objects_per_request=50)

    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "mia@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.click("nav >> text=Syncs")
    page.click("text=New sync")

    form = page.locator("#wizard-form")
    expect(form).to_have_attribute("data-step", "cohort")
    page.select_option("#id_cohort", label="Churn risk (100 members)")
    page.click("#next")
    expect(form).to_have_attribute("data-step", "destination")
    page.click("#back")  # Back keeps the cohort
    expect(page.locator("#id_cohort")).to_have_value(str(cohort.pk))
    page.click("#next")
    page.select_option("#id_connection", label="Braze prod (Braze)")
    page.click("#next")

    expect(form).to_have_attribute("data-step", "identifier")
    braze_id = page.locator("tr[data-identifier=braze_id]")
    expect(braze_id.locator(".members")).to_have_text("70")
    expect(braze_id.locator(".share")).to_have_text("70 %")
    expect(page.locator("tr[data-identifier=external_id] .share")).to_have_text("50 %")
    gaid = page.locator("tr[data-identifier=gaid]")
    expect(gaid).to_contain_text("Braze does not take this identifier.")
    expect(gaid.locator("input[name=primary_identifier]")).to_be_disabled()
    screenshot(page, "sync-wizard-identifier")
    page.check("input[name=primary_identifier][value=external_id]")
    page.check("input[name=fallback_identifier][value=braze_id]")
    page.click("#next")

    expect(form).to_have_attribute("data-step", "cadence")
    page.reload()  # a GET: the same step again, nothing to resubmit
    expect(form).to_have_attribute("data-step", "cadence")
    page.check("input[name=cadence][value=daily]")
    page.click("#next")
    # A daily sync needs its time: the step says so and stays.
    expect(form).to_have_attribute("data-step", "cadence")
    expect(page.locator(".error")).to_contain_text("A daily sync needs its time of day.")
    page.fill("#id_daily_time", "09:30")
    page.fill("#id_timezone", "Europe/Paris")
    page.click("#next")

    expect(form).to_have_attribute("data-step", "preview")
    preview = page.locator("#preview")
    expect(preview.locator(".adds")).to_have_text("80")
    expect(preview.locator(".skipped")).to_have_text("20")
    expect(preview.locator(".removes")).to_have_text("0")
    expect(preview.locator(".requests")).to_contain_text("2")  # 100 members, batches of 50
    expect(preview.locator(".duration")).to_contain_text("3,000 requests per 3 s")
    expect(page.locator("#id_name")).to_have_value("Churn risk → Braze prod")
    screenshot(page, "sync-wizard-preview")
    page.go_back()  # the browser's Back: the cadence step with its answers
    expect(form).to_have_attribute("data-step", "cadence")
    expect(page.locator("#id_timezone")).to_have_value("Europe/Paris")
    page.go_forward()
    page.click("#save")

    expect(page.locator("h1")).to_contain_text("Churn risk → Braze prod")
    sync = Sync.objects.get()
    assert sync.identifier_mapping == ["external_id", "braze_id"]
    assert sync.cadence == {"kind": "daily", "time_of_day": "09:30", "timezone": "Europe/Paris"}

    page.click("#edit")
    expect(form).to_have_attribute("data-step", "identifier")
    page.check("input[name=membership_mode][value=boolean]")
    page.click("#next")
    page.click("#next")
    expect(page.locator("#preview h2")).to_have_text("The next run, with these settings")
    expect(page.locator("#preview .adds")).to_have_text("80")
    screenshot(page, "sync-wizard-edit-preview")
    page.click("#save")
    expect(page.locator(".messages")).to_contain_text("saved")
    sync.refresh_from_db()
    assert sync.options == {"membership_mode": "boolean"}
