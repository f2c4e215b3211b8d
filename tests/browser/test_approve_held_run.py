"""An admin, in a real browser: a sync whose cohort lost 8 of its 10 members is held by the
mass-removal guard; the admin opens the held run, sees what approving would remove, approves,
and watches the new run take the 8 out of the destination."""

import pytest
import requests

from cohorts.membership import Identity, apply_changes
from core.roles import Role
from syncs.models import SyncedMember, SyncRun
from syncs.services import start_run
from tests.base import PASSWORD, make_user
from tests.browser.conftest import screenshot
from tests.factories import make_cohort, make_simulator_connection, make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("rq_redis")]
MEMBERS = [f"user-{n:02d}" for n in range(10)]
LEAVING = MEMBERS[:8]


def in_braze(sandbox, value):
    response = requests.get(f"{sandbox.url}/_sandbox/braze/profiles/external_id:{value}", timeout=5)
    if response.status_code == 404:
        return False
    return "Churn risk" in (response.json()["attributes"].get("cohortsync_cohorts") or [])


def run(sync):
    started, created = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    assert created
    run_jobs()
    started.refresh_from_db()
    return started


def test_an_admin_approves_a_held_run(page, live_server, sandbox, transactional_db):
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect
    make_user(Role.ADMIN, email="ada@example.com")
    cohort = make_cohort(members=MEMBERS)
    sync = make_sync(cohort=cohort, connection=make_simulator_connection(sandbox))

    assert run(sync).added == 10
    apply_changes(cohort.pk, remove=[Identity("external_id", value) for value in LEAVING])
    held = run(sync)
    assert held.status == SyncRun.Status.HELD
    assert all(in_braze(sandbox, value) for value in MEMBERS)

    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "ada@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.click("nav >> text=Syncs")
    page.click("text=Churn → Braze")
    page.click(f'table a[title="Open run {held.pk}"]')

    card = page.locator(".card.held")
    expect(card).to_contain_text("Held for approval")
    expect(card.locator(".removals-now")).to_have_text("8")
    expect(card.locator(".removal-sample li")).to_have_count(8)
    for value in LEAVING:
        expect(card).to_contain_text(f"external_id:{value}")
    expect(page.locator(".run-timeline")).to_contain_text("Held for approval")
    screenshot(page, "held-run")

    page.click("#approve-run")
    expect(page.locator(".messages")).to_contain_text("Approved")
    approved = SyncRun.objects.exclude(pk=held.pk).get(status=SyncRun.Status.QUEUED)
    expect(page.locator("h1")).to_contain_text(f"Run {approved.pk}")
    expect(page.locator("#run-progress")).to_have_attribute("data-status", "queued")
    url_before = page.url
    run_jobs()  # the worker sends the removals; the page polls for the outcome
    # Once the run is over the page reads itself again: status, counts and timeline are final.
    expect(page.locator(".run-facts .badge")).to_have_text("Succeeded")
    expect(page.locator(".run-counts .removed")).to_have_text("8")
    assert page.url == url_before  # no reload
    expect(page.locator(".run-timeline")).to_contain_text("Finished")
    screenshot(page, "held-run-approved")

    approved.refresh_from_db()
    assert (approved.removed, approved.failed) == (8, 0)
    assert not any(in_braze(sandbox, value) for value in LEAVING)
    assert all(in_braze(sandbox, value) for value in MEMBERS[8:])
    assert set(SyncedMember.objects.values_list("value", flat=True)) == set(MEMBERS[8:])
    held.refresh_from_db()
    assert held.status == SyncRun.Status.CANCELED

    # The member lookup says where a removed member went, and by which run.
    page.click("nav >> text=Member lookup")
    page.fill("#id_q", "user-00")
    page.click("button:has-text('Look up')")
    removed = page.locator(".former .sync-state[data-state=removed]")
    expect(removed).to_contain_text(f"run {approved.pk}")
    screenshot(page, "member-lookup-removed")

    # The connection's page loads its timeline: the approval's run with who asked for it.
    page.click("nav >> text=Connections")
    page.click("text=Braze sandbox")
    timeline = page.locator(".connection-timeline")
    expect(timeline).to_contain_text(f"Run {approved.pk} of Churn → Braze")
    expect(timeline.locator(".timeline-run").first).to_contain_text("ada@example.com")
    screenshot(page, "connection-timeline")
