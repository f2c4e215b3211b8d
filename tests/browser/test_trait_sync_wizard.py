"""A marketer, in a real browser, creates a trait sync: chooses "Member traits" on the
destination step, sees the properties its cohort's members carry, types two of them (one
renamed) on separate lines, and the preview and the saved sync keep both lines through the
steps that carry them as hidden fields."""

import pytest

from cohorts.membership import Identity, apply_changes
from core.roles import Role
from syncs.models import Sync
from tests.base import PASSWORD, make_connection, make_user
from tests.browser.conftest import screenshot
from tests.factories import make_cohort

pytestmark = [pytest.mark.browser]


def test_a_marketer_creates_a_trait_sync_and_its_lines_survive_the_steps(
    page, live_server, transactional_db
):
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect
    make_user(Role.MARKETER, email="mia@example.com")
    cohort = make_cohort(name="Power users")
    apply_changes(
        cohort.pk,
        add=[
            Identity("external_id", f"u{n}", properties={"plan": "pro", "score": n})
            for n in range(30)
        ],
    )
    make_connection(name="Braze prod")

    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "mia@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/syncs/new/")
    form = page.locator("#wizard-form")
    page.select_option("#id_cohort", label="Power users (30 members)")
    page.click("#next")
    page.select_option("#id_connection", label="Braze prod (Braze)")
    page.check("input[name=kind][value=traits]")
    page.click("#next")

    expect(form).to_have_attribute("data-step", "traits")
    expect(page.locator("tr[data-property=score] .members")).to_have_text("30")
    page.fill("#id_traits", "plan\nscore -> lead_score")
    screenshot(page, "trait-sync-properties")
    page.click("#next")
    expect(form).to_have_attribute("data-step", "cadence")
    page.click("#next")

    expect(form).to_have_attribute("data-step", "preview")
    expect(page.locator("#traits-chosen")).to_contain_text("score as lead_score")
    expect(page.locator("#preview .updates")).to_have_text("30")
    expect(page.locator("#preview .attributes")).to_have_text("60")
    screenshot(page, "trait-sync-preview")
    page.click("#save")
    expect(page.locator("#sync-traits")).to_contain_text("lead_score")
    assert Sync.objects.get().traits == [
        {"property": "plan", "attribute": "plan"},
        {"property": "score", "attribute": "lead_score"},
    ]
