"""A marketer, in a real browser: uploads a CSV to a cohort and watches the progress bar reach
done without reloading, then downloads the bad rows."""

from pathlib import Path

import pytest
from django.urls import reverse

from cohorts.models import Cohort, CohortMember
from core.roles import Role
from tests.base import PASSWORD, make_user
from tests.browser.conftest import screenshot
from tests.jobs import run_jobs

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("rq_redis")]

ROWS = 3000
BAD_LINE = 1502


def test_a_marketer_uploads_a_csv_and_watches_the_progress_bar_reach_done(
    page, live_server, transactional_db, settings, tmp_path
):
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect
    settings.MEDIA_ROOT = tmp_path / "media"
    make_user(Role.MARKETER, email="mia@example.com")
    cohort = Cohort.objects.create(name="Spring reactivation", source=Cohort.Source.CSV)
    lines = [f"user-{n:05},g-{n}" for n in range(ROWS)]
    lines.insert(BAD_LINE - 2, ",no-identifier")  # the header is line 1
    csv_path = tmp_path / "spring.csv"
    csv_path.write_text("external_id,gaid\n" + "\n".join(lines) + "\n")

    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "mia@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".who")).to_contain_text("mia@example.com · marketer")

    page.goto(live_server.url + reverse("cohorts:upload_create", args=[cohort.pk]))
    expect(page.locator("h1")).to_contain_text("Spring reactivation")
    page.set_input_files("#id_file", str(csv_path))
    page.check("#mode-replace")
    screenshot(page, "csv-upload-form")
    page.click("button:has-text('Upload and import')")
    progress = page.locator("#upload-progress")
    expect(progress).to_have_attribute("data-status", "queued")
    url_before = page.url

    run_jobs()  # the worker imports the file; the page polls for the outcome
    expect(page.locator("#upload-progress[data-status=succeeded]")).to_be_visible()
    assert page.url == url_before  # no reload
    expect(progress.locator("progress")).to_have_attribute("value", "100")
    expect(progress.locator(".added")).to_have_text("3,000")
    expect(progress.locator(".removed")).to_have_text("0")
    expect(progress.locator(".rows-done")).to_have_text("3,001")
    expect(progress.locator(".rows-bad")).to_contain_text("1")
    link = progress.locator("a.bad-rows-link")
    expect(link).to_be_visible()
    screenshot(page, "csv-upload-done")

    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "spring-bad-rows.csv"
    content = Path(download.value.path()).read_text(encoding="utf-8")
    assert content.splitlines()[1] == f'{BAD_LINE},external_id is empty,",no-identifier"'
    assert CohortMember.objects.filter(cohort=cohort).count() == ROWS
