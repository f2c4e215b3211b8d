"""A marketer, in a real browser: opens a run that partially failed for real (Braze refused some
members by index, one member had no identifier the sync could use), sees the errors grouped by
reason, and exports them: the CSV lists every failed and skipped member."""

import csv

import pytest
import requests

from cohorts.membership import Identity
from core.roles import Role
from syncs.models import SyncRun
from syncs.services import start_run
from tests.base import PASSWORD, make_user
from tests.browser.conftest import screenshot
from tests.factories import make_cohort, make_simulator_connection, make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("rq_redis")]
REFUSED = [f"user-{n:03d}" for n in range(0, 200, 9)]


def test_opens_a_failed_run_and_exports_its_errors(page, live_server, sandbox, transactional_db):
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect
    make_user(Role.MARKETER, email="mia@example.com")
    requests.post(
        f"{sandbox.url}/_sandbox/braze/rejections",
        json={
            "identifiers": [f"external_id:{value}" for value in REFUSED],
            "error": "Invalid external_id",
        },
        timeout=5,
    ).raise_for_status()
    members = [f"user-{n:03d}" for n in range(200)]
    cohort = make_cohort(members=[*members, Identity("device_id", "device-without-external-id")])
    sync = make_sync(cohort=cohort, connection=make_simulator_connection(sandbox))

    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    run.refresh_from_db()
    assert run.status == SyncRun.Status.PARTIALLY_FAILED
    assert (run.failed, run.skipped) == (len(REFUSED), 1)

    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "mia@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.click("nav >> text=Syncs")
    page.click("text=Churn → Braze")
    page.click(f'table a[title="Open run {run.pk}"]')

    expect(page.locator("h1")).to_contain_text(f"Run {run.pk}")
    groups = page.locator(".error-groups tbody tr")
    expect(groups).to_have_count(2)
    expect(groups.nth(0).locator(".reason")).to_have_text("Invalid external_id")
    expect(groups.nth(0).locator(".num")).to_have_text(str(len(REFUSED)))
    expect(groups.nth(1).locator(".reason")).to_contain_text("No usable identifier")
    expect(page.locator(".run-timeline")).to_contain_text("Batches 1-3")
    expect(page.locator(".count-check")).to_contain_text(
        f"Planned 201 = {200 - len(REFUSED)} added + 0 removed + {len(REFUSED)} failed + 1 skipped"
    )
    screenshot(page, "failed-run-errors")

    with page.expect_download() as download_info:
        page.click("#export-errors")
    download = download_info.value
    assert download.suggested_filename == f"sync-{sync.pk}-run-{run.pk}-errors.csv"
    with open(download.path(), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    failed = {row["member"] for row in rows if row["outcome"] == "failed"}
    assert failed == {f"external_id:{value}" for value in REFUSED}
    assert {row["reason"] for row in rows if row["outcome"] == "failed"} == {"Invalid external_id"}
    assert [row["member"] for row in rows if row["outcome"] == "skipped"] == [
        "device_id:device-without-external-id"
    ]
    screenshot(page, "failed-run-exported")
