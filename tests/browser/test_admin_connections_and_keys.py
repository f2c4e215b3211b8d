"""An admin, in a real browser: adds a Braze sandbox connection, tests it, generates a key,
sees it once, and revokes it."""

import re

import pytest

from connections.models import ImportKey
from connections.sandbox import DEMO_BRAZE_KEY
from core.roles import Role
from tests.base import PASSWORD, make_user
from tests.browser.conftest import screenshot
from tests.jobs import run_jobs

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("rq_redis")]


def test_admin_connects_braze_tests_it_and_manages_an_import_key(
    page, live_server, sandbox, transactional_db
):
    make_user(Role.ADMIN, email="ada@example.com")
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect

    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "ada@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".who")).to_contain_text("ada@example.com · admin")

    page.click("text=Connections")
    page.click("text=Add connection")
    page.click("text=Braze")
    page.fill("#id_name", "Braze sandbox")
    page.fill("#id_secret", DEMO_BRAZE_KEY)
    page.select_option("#id_instance", "custom")
    page.fill("#id_custom_endpoint", sandbox.url)
    page.click("button:has-text('Add connection')")
    expect(page.locator("h1")).to_contain_text("Braze sandbox")
    expect(page.locator("#connection-state")).to_contain_text("Not tested yet")
    assert DEMO_BRAZE_KEY not in page.content()

    page.click("#test-connection")
    expect(page.locator("#check-result")).to_contain_text("Testing the connection")
    url_before = page.url
    run_jobs()  # the worker makes the partner call; the page polls for the outcome
    expect(page.locator("#check-result")).to_contain_text("Credentials accepted")
    expect(page.locator("#connection-state")).to_contain_text("Healthy")
    assert page.url == url_before  # no reload
    screenshot(page, "connection-tested")

    page.click("text=Import keys")
    page.click("a:has-text('Generate key')")
    page.select_option("#id_partner", "appsflyer")
    page.fill("#id_name", "AppsFlyer audiences")
    page.click("button:has-text('Generate key')")
    raw_key = page.input_value("#import-key")
    assert re.fullmatch(r"csik_\w{12}_[\w-]{43}", raw_key)
    # copy.js is deferred: a click before it runs would go unheard.
    page.wait_for_load_state("load")
    page.click("button[data-copy-target=import-key]")
    expect(page.locator("button[data-copy-target=import-key]")).to_have_text("Copied")
    screenshot(page, "import-key-shown-once")
    # A browser that refuses both ways of copying: the button says so, the key selected.
    page.evaluate(
        "navigator.clipboard.writeText = () => Promise.reject(new Error('denied'));"
        "document.execCommand = () => false;"
    )
    page.click("button[data-copy-target=import-key]")
    expect(page.locator("button[data-copy-target=import-key]")).to_have_text(
        "Select and copy by hand"
    )
    # A clipboard that never answers (a prompt nobody sees): the button does not stay silent.
    page.evaluate(
        "navigator.clipboard.writeText = () => new Promise(() => {});"
        "document.execCommand = () => false;"
        "document.querySelector('button[data-copy-target=import-key]').textContent = 'Copy';"
    )
    page.click("button[data-copy-target=import-key]")
    expect(page.locator("button[data-copy-target=import-key]")).to_have_text(
        "Select and copy by hand"
    )

    page.click("text=I have copied it")
    assert raw_key not in page.content()
    page.click("text=Import keys")
    assert raw_key not in page.content()
    expect(page.locator("table")).to_contain_text("AppsFlyer audiences")

    page.click("a:has-text('AppsFlyer audiences')")
    page.click("button:has-text('Revoke…')")
    page.click("button:has-text('Revoke key')")
    expect(page.locator(".badge.revoked")).to_be_visible()
    screenshot(page, "import-key-revoked")
    assert ImportKey.objects.get(name="AppsFlyer audiences").revoked_at is not None
