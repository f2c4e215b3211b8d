"""A marketer, in a real browser, on a laptop and on a phone: opens a run whose first request
Braze answered 503, finds it highlighted among the run's requests and answers, and opens it to
the redacted request (three members in full, the rest counted) and Braze's answer. On the phone
the JSON wraps inside its card: the page never scrolls sideways and no card scrolls unhinted.
Screenshots go to .ci/artifacts/."""

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.urls import reverse

from connections.sandbox import DEMO_BRAZE_KEY
from core.roles import Role
from syncs.models import SyncRun
from syncs.services import start_run
from tests.base import make_user
from tests.browser.conftest import screenshot
from tests.browser.test_phone_layout import PHONE, check_layout, expect_of, log_in
from tests.factories import make_cohort, make_simulator_connection, make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("rq_redis")]

MEMBERS = [f"lapsed-buyer-{n:04d}" for n in range(200)]


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport=PHONE)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def run_that_met_a_503(sandbox: Any) -> SyncRun:
    """Three batches, one request at a time: the first answered 503, then accepted."""
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"partner": "braze", "statuses": [503]}, timeout=5
    ).raise_for_status()
    sync = make_sync(
        name="Lapsed buyers → Braze",
        cohort=make_cohort(name="Lapsed buyers", members=MEMBERS),
        connection=make_simulator_connection(sandbox, max_concurrent_requests=1),
    )
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    run.refresh_from_db()
    assert (run.status, run.retries, run.added) == (SyncRun.Status.SUCCEEDED, 1, len(MEMBERS))
    return run


def open_the_refused_exchange(page: Any) -> Any:
    expect = expect_of()
    lines = page.locator("#exchanges .exchange")
    expect(lines).to_have_count(4)  # batch 1 twice (503, then 201), batches 2 and 3
    refused = page.locator("#exchanges .exchange.failed")
    expect(refused).to_have_count(1)
    expect(refused.locator("summary")).to_contain_text("Batch 1")
    expect(refused.locator("summary")).to_contain_text("503 Service Unavailable")
    expect(refused.locator(".exchange-answer")).not_to_be_visible()
    refused.locator("summary").click()
    expect(refused).to_have_attribute("open", "")
    expect(refused.locator(".exchange-answer")).to_be_visible()
    expect(refused.locator(".exchange-answer")).to_contain_text('"message": "Service Unavailable"')
    request = refused.locator(".exchange-request")
    expect(request).to_contain_text("… and 72 more objects")
    expect(request).to_contain_text('"_update_existing_only"')
    expect(refused.locator(".exchange-endpoint")).to_have_text("POST /users/track")
    shown = [member for member in MEMBERS if member in request.inner_text()]
    assert len(shown) == 3
    assert DEMO_BRAZE_KEY not in page.content()
    return refused


def test_a_marketer_opens_a_refused_request_on_a_laptop(
    page, live_server, sandbox, transactional_db
):
    make_user(Role.MARKETER, email="mia@example.com")
    run = run_that_met_a_503(sandbox)
    log_in(page, live_server, "mia@example.com")
    page.goto(live_server.url + reverse("syncs:run_detail", args=[run.sync_id, run.pk]))
    expect_of()(page.locator("#exchanges .exchange")).to_have_count(4)
    screenshot(page, "run-exchanges-laptop")

    open_the_refused_exchange(page)
    layout = check_layout(page, "run-exchanges-laptop-open")
    assert not any(card["scrolls"] for card in layout["cards"])


def test_on_a_phone_the_request_and_answer_wrap_inside_their_card(
    phone, live_server, sandbox, transactional_db
):
    make_user(Role.MARKETER, email="mia@example.com")
    run = run_that_met_a_503(sandbox)
    log_in(phone, live_server, "mia@example.com")
    phone.goto(live_server.url + reverse("syncs:run_detail", args=[run.sync_id, run.pk]))

    refused = open_the_refused_exchange(phone)
    refused.scroll_into_view_if_needed()
    layout = check_layout(phone, "phone-run-exchanges")
    [card] = [card for card in layout["cards"] if card["text"].startswith("Requests and answers")]
    assert not card["scrolls"]
    width = phone.evaluate("document.documentElement.clientWidth")
    for body in refused.locator(".exchange-body").all():
        box = body.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
