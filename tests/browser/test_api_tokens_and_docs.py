"""A person in a real browser: creates an API token on the profile page, sees it once, opens the
API docs (Swagger UI from this server, no request leaves it), and revokes the token."""

import re

import pytest

from api.models import ApiToken
from core.roles import Role
from tests.api.helpers import ApiClient
from tests.base import PASSWORD, make_user
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser


def test_a_marketer_creates_a_token_reads_the_docs_and_revokes_it(
    page, live_server, transactional_db
):
    from playwright.sync_api import expect

    make_user(Role.MARKETER, email="mo@example.com")
    outside = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith(live_server.url) else outside.append(request.url)
        ),
    )
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "mo@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.click("nav >> text=API tokens")
    page.fill("#id_name", "nightly export")
    page.click("button:has-text('Create token')")
    raw_token = page.input_value("#api-token")
    assert re.fullmatch(r"cs_[A-Za-z0-9]{8}_[\w-]{43}", raw_token)
    screenshot(page, "api-token-shown-once")
    assert ApiClient(raw_token).get("/syncs").status_code == 200

    page.click("text=API docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("cohortsync API")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    screenshot(page, "api-docs")
    page.click("#back-to-app >> text=cohortsync")  # the docs lead back to the app (#15)
    expect(page).to_have_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/accounts/profile/")
    assert raw_token not in page.content()
    page.click("button:has-text('Revoke')")
    expect(page.locator(".badge.revoked")).to_be_visible()
    assert ApiToken.objects.get().revoked_at is not None
    assert ApiClient(raw_token).get("/syncs").status_code == 401
    assert outside == []
