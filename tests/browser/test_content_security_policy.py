"""In a real browser: the pages work under the Content-Security-Policy and the browser reports no
violation of it, including the htmx-driven parts (a live run's progress, the key's import log)
and the API docs (Swagger UI)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cohorts.models import CsvUpload
from connections.keys import generate_import_key
from core.roles import Role
from syncs.models import SyncRun
from tests.base import PASSWORD, make_user
from tests.factories import make_cohort, make_run, make_sync

pytestmark = pytest.mark.browser

# Console text of a refused resource or inline script/style.
VIOLATION = "Content Security Policy"


def test_no_page_breaks_the_policy(page, live_server, transactional_db):
    from playwright.sync_api import expect

    make_user(Role.ADMIN, email="ada@example.com")
    sync = make_sync(cohort=make_cohort(members=3))
    make_run(sync, status=SyncRun.Status.SUCCEEDED, finished_at=timezone.now() - timedelta(hours=1))
    running = make_run(
        sync, status=SyncRun.Status.RUNNING, started_at=timezone.now(), planned_adds=300, added=100
    )
    upload = CsvUpload.objects.create(
        cohort=sync.cohort, mode="add", file_name="x.csv", status=CsvUpload.Status.RUNNING,
        size_bytes=1000, bytes_done=400, rows_done=40,
    )  # fmt: skip
    key, _ = generate_import_key(partner="amplitude", name="Amplitude", actor=None)

    reported = []
    page.on("console", lambda message: reported.append(message.text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e =>"
        " console.error('Content Security Policy violation: ' + e.violatedDirective"
        " + ' ' + e.blockedURI))"
    )
    page.goto(f"{live_server.url}{reverse('login')}")
    page.fill("#id_username", "ada@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("nav")).to_be_visible()

    paths = [
        reverse("home"),
        reverse("syncs:sync_detail", args=[sync.pk]),
        reverse("syncs:run_detail", args=[sync.pk, running.pk]),
        reverse("cohorts:cohort_detail", args=[sync.cohort.pk]),
        reverse("cohorts:upload_detail", args=[sync.cohort.pk, upload.pk]),
        reverse("connections:key_detail", args=[key.pk]),
        reverse("cohorts:import_requests"),
        reverse("login_lockouts"),
        reverse("profile"),
        "/api/v1/docs",
    ]
    for path in paths:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1200)  # htmx's delayed loads and polls
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("cohortsync API")
    page.goto(f"{live_server.url}{reverse('connections:key_detail', args=[key.pk])}")
    expect(page.locator(".import-requests")).to_be_visible()  # loaded by htmx
    assert [text for text in reported if VIOLATION in text] == []
