"""In a real browser: after every live update, each page tells the truth about now. No message
or badge from the state before stays beside the state after: "Run queued" beside "Succeeded",
"the import is under way" above a finished import, the "Healthy" badge twice, "Not tested yet ·
checked 0 minutes ago" beside the old key's error (#15).

Skipped with the reason when no Chromium is found (tests/browser/conftest.py).
"""

import pytest
import requests
from django.urls import reverse

from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort
from connections import crypto
from connections.sandbox import DEMO_BRAZE_KEY
from core.roles import Role
from syncs.models import SyncRun
from syncs.services import start_run
from tests.base import PASSWORD, make_user
from tests.browser.conftest import screenshot
from tests.factories import make_cohort, make_simulator_connection, make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("rq_redis")]

# Words that describe a state a live update has left behind.
STALE = (
    "a worker starts it",
    "Waiting for a worker",
    "under way",
    "Testing the connection",
    "was queued already",
)


def expect_of():
    return __import__("playwright.sync_api", fromlist=["expect"]).expect


def log_in(page, live_server, email):
    page.goto(f"{live_server.url}{reverse('login')}")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect_of()(page.locator(".who")).to_contain_text(email)


def assert_nothing_stale(page):
    text = page.locator("main").inner_text()
    for words in STALE:
        assert words not in text, words


def test_the_sync_page_after_its_runs_end_says_only_how_they_ended(
    page, live_server, sandbox, transactional_db
):
    expect = expect_of()
    make_user(Role.MARKETER, email="mia@example.com")
    sync = make_sync(
        cohort=make_cohort(members=30), connection=make_simulator_connection(sandbox), orm=True
    )
    log_in(page, live_server, "mia@example.com")
    page.goto(live_server.url + reverse("syncs:sync_detail", args=[sync.pk]))
    page.evaluate("window.notReloaded = true")

    page.click("#run-now")
    expect(page.locator("#run-progress")).to_have_attribute("data-status", "queued")
    expect(page.locator("#run-progress")).to_contain_text("Waiting for a worker")
    page.click("#run-now")  # a second press starts nothing, and says so
    expect(page.locator("#messages")).to_contain_text("was queued already")
    page.evaluate("window.notReloaded = true")
    run_jobs()
    expect(page.locator("#run-progress[data-status=succeeded]")).to_be_visible()
    expect(page.locator("#run-history tbody tr").first.locator(".badge")).to_have_text("Succeeded")
    expect(page.locator("#messages")).to_be_empty()
    assert page.evaluate("window.notReloaded") is True
    assert_nothing_stale(page)
    screenshot(page, "status-sync-run-succeeded")

    # The partner refuses the key on the next run: the run fails, the connection needs
    # attention and pauses its syncs, and the sync's header says so without a reload.
    apply_changes(sync.cohort_id, add=[Identity("external_id", "joined-later")])
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"partner": "braze", "statuses": [401]}, timeout=5
    ).raise_for_status()
    expect(page.locator("h1 .badge")).to_have_text("Active")
    page.click("#run-now")
    expect(page.locator("#run-progress")).to_have_attribute("data-status", "queued")
    page.evaluate("window.notReloaded = true")
    run_jobs()
    expect(page.locator("#run-progress[data-status=failed]")).to_be_visible()
    expect(page.locator("h1 .badge")).to_have_text("Needs attention")
    expect(page.locator("#paused-note")).to_contain_text("Run now still runs it once")
    expect(page.locator("#resume")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    assert_nothing_stale(page)
    assert SyncRun.objects.filter(status="failed").count() == 1
    screenshot(page, "status-sync-run-refused")


def test_a_full_resync_page_loses_its_message_when_the_run_ends(
    page, live_server, sandbox, transactional_db
):
    expect = expect_of()
    make_user(Role.MARKETER, email="mia@example.com")
    sync = make_sync(
        cohort=make_cohort(members=12), connection=make_simulator_connection(sandbox), orm=True
    )
    log_in(page, live_server, "mia@example.com")
    page.goto(live_server.url + reverse("syncs:sync_resync", args=[sync.pk]))
    page.click("#confirm-resync")
    expect(page.locator("#messages")).to_contain_text("Full resync")
    expect(page.locator("#run-progress")).to_have_attribute("data-status", "queued")
    run_jobs()
    expect(page.locator(".run-facts .badge")).to_have_text("Succeeded")
    expect(page.locator("#messages")).to_be_empty()
    assert_nothing_stale(page)
    screenshot(page, "status-resync-finished")


def test_a_finished_csv_import_is_not_said_to_be_under_way(
    page, live_server, transactional_db, settings, tmp_path
):
    expect = expect_of()
    settings.MEDIA_ROOT = tmp_path / "media"
    make_user(Role.MARKETER, email="mia@example.com")
    cohort = Cohort.objects.create(name="Spring reactivation", source=Cohort.Source.CSV)
    csv_path = tmp_path / "spring.csv"
    csv_path.write_text("external_id\n" + "\n".join(f"user-{n}" for n in range(50)) + "\n")
    log_in(page, live_server, "mia@example.com")
    page.goto(live_server.url + reverse("cohorts:upload_create", args=[cohort.pk]))
    page.set_input_files("#id_file", str(csv_path))
    page.click("button:has-text('Upload and import')")
    expect(page.locator("#upload-progress")).to_have_attribute("data-status", "queued")
    expect(page.locator("#messages")).to_have_text("spring.csv uploaded.")
    run_jobs()
    expect(page.locator("#upload-progress[data-status=succeeded]")).to_be_visible()
    assert_nothing_stale(page)
    screenshot(page, "status-csv-import-finished")


def test_a_connection_page_shows_one_state_and_only_the_current_keys_test(
    page, live_server, sandbox, transactional_db
):
    expect = expect_of()
    make_user(Role.ADMIN, email="ada@example.com")
    connection = make_simulator_connection(sandbox)
    connection.encrypted_secret = crypto.encrypt("braze-key-nobody-knows-0000")
    connection.save(update_fields=["encrypted_secret"])
    log_in(page, live_server, "ada@example.com")
    page.goto(live_server.url + reverse("connections:detail", args=[connection.pk]))
    state = page.locator("#connection-state")

    page.click("#test-connection")
    # The check job is queued by the click's request: wait for its answer before running jobs.
    expect(page.locator("#check-result")).to_contain_text("Testing the connection")
    run_jobs()
    expect(page.locator("#check-result")).to_contain_text("Credentials refused")
    expect(state).to_contain_text("Needs attention")
    page.reload()  # the whole page draws the state once too
    expect(state).to_have_count(1)
    expect(page.locator(".badge.needs_attention")).to_have_count(1)

    page.click("text=Edit")
    page.fill("#id_secret", DEMO_BRAZE_KEY)
    page.click("button[type=submit].primary")
    expect(page.locator("#messages")).to_contain_text("Connection saved.")
    expect(state).to_have_text("Not tested yet")  # not "· checked 0 minutes ago"
    expect(page.locator("#check-result")).to_be_empty()  # not the old key's refusal
    # The timeline below keeps the refusal, with its time; the state above says nothing of it.
    assert "Invalid API key" not in page.locator("section.card").first.inner_text()

    page.click("#test-connection")
    expect(page.locator("#check-result")).to_contain_text("Testing the connection")
    run_jobs()
    expect(page.locator("#check-result")).to_contain_text("Credentials accepted")
    expect(state).to_contain_text("Healthy")
    expect(page.locator(".badge.healthy")).to_have_count(1)
    expect(page.locator("#messages")).to_be_empty()  # "saved" was about the state before
    assert_nothing_stale(page)
    screenshot(page, "status-connection-tested")


def test_deleting_a_connection_shows_progress_only_then_that_it_is_deleted(
    page, live_server, sandbox, transactional_db
):
    expect = expect_of()
    make_user(Role.ADMIN, email="ada@example.com")
    sync = make_sync(
        cohort=make_cohort(members=12), connection=make_simulator_connection(sandbox), orm=True
    )
    start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    log_in(page, live_server, "ada@example.com")
    page.goto(live_server.url + reverse("connection_delete", args=[sync.connection_id]))
    expect(page.locator(".in-destination")).to_contain_text("12 members in Braze")
    page.check("input[name=cleanup][value=remove]")
    page.fill("#id_confirm_name", "Braze sandbox")
    page.click("button:has-text('Delete connection')")

    removal = page.locator("#connection-removal")
    expect(removal).to_have_attribute("data-state", "removing")
    expect(removal.locator("h1")).to_have_text("Deleting Braze sandbox")
    expect(page.locator("#id_confirm_name")).to_have_count(0)  # progress only, no second form
    expect(page.locator("#messages")).to_be_empty()
    page.evaluate("window.notReloaded = true")
    run_jobs()  # the cleanup run removes the 12 members; the last one deletes the connection
    # The page reads its progress every 3 s: wait for a few of those, not a fixed time.
    expect(removal).to_have_attribute("data-state", "deleted", timeout=15_000)
    expect(removal.locator("h1")).to_have_text("Connection deleted")
    assert page.evaluate("window.notReloaded") is True
    assert_nothing_stale(page)
    screenshot(page, "status-connection-deleted")
