"""In a real browser on a phone (390 x 844): the home, sync, run and wizard pages read well.

On each page: nothing makes the page itself scroll sideways; no word breaks in the middle
(only an identifier too long for its line may); no text runs past the screen; every card that
scrolls sideways (a wide table) says so, and no other card does; the charts fit their card,
their bars on screen. On a laptop (1280 x 900) no card of those pages scrolls at all.
Screenshots go to .ci/artifacts/.

Skipped with the reason when no Chromium is found (tests/browser/conftest.py).
"""

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.urls import reverse

from cohorts.membership import Identity
from core.roles import Role
from syncs.models import SyncRun
from syncs.services import start_run
from tests.base import PASSWORD, make_user
from tests.browser.conftest import screenshot
from tests.factories import make_cohort, make_simulator_connection, make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("rq_redis")]

PHONE = {"width": 390, "height": 844}

# What the page looks like to a reader, measured in the browser (see the module's docstring).
LAYOUT = """() => {
  const main = document.querySelector("main");
  const width = document.documentElement.clientWidth;
  // Words that are words, not part of an identifier: letters only, between spaces or punctuation.
  const word = /(?<![\\w.:@-])[A-Za-z]{2,}(?![\\w@-])/g;
  const broken = [];
  const range = document.createRange();
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest("select, svg, script, style")) continue;
    for (const match of node.data.matchAll(word)) {
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const lines = new Set(
        Array.from(range.getClientRects()).filter((r) => r.width > 0).map((r) => Math.round(r.top))
      );
      if (lines.size > 1) broken.push(match[0]);
    }
  }
  const clipped = Array.from(main.querySelectorAll("h1, h2, p, dt, dd, legend, label, li"))
    .filter((el) => !el.closest("table") && el.getClientRects().length)
    .filter((el) => {
      const r = el.getBoundingClientRect();
      return r.left < -0.5 || r.right > width + 0.5;
    })
    .map((el) => el.textContent.trim().slice(0, 60));
  const cards = Array.from(main.querySelectorAll(".card")).map((card) => ({
    scrolls: card.scrollWidth > card.clientWidth + 1,
    hinted: card.classList.contains("scrolls-sideways")
      && getComputedStyle(card, "::before").content.includes("Scroll sideways"),
    text: card.textContent.trim().slice(0, 40),
  }));
  const bars = Array.from(main.querySelectorAll(".bar-chart")).map((chart) => {
    const card = chart.closest(".card").getBoundingClientRect();
    const inside = (r) => r.left >= card.left - 0.5 && r.right <= card.right + 0.5;
    return {
      fits: inside(chart.getBoundingClientRect()),
      bars: chart.querySelectorAll("rect.bar").length,
      barsInside: Array.from(chart.querySelectorAll("rect.bar"))
        .filter((bar) => inside(bar.getBoundingClientRect())).length,
      tickPx: Math.min(...Array.from(chart.querySelectorAll("text.tick"))
        .map((t) => t.getBoundingClientRect().height)),
    };
  });
  return {pageWidth: document.documentElement.scrollWidth, width, broken, clipped, cards, bars};
}"""


@pytest.fixture(autouse=True)
def _fresh_chart_cache() -> Iterator[None]:
    cache.clear()  # the home chart's totals are kept a minute: not another test's runs
    yield
    cache.clear()


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport=PHONE)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def expect_of() -> Any:
    return __import__("playwright.sync_api", fromlist=["expect"]).expect


def log_in(page: Any, live_server: Any, email: str) -> None:
    page.goto(f"{live_server.url}{reverse('login')}")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect_of()(page.locator(".who")).to_contain_text(email)


def check_layout(page: Any, name: str, *, wide_tables: int = 0) -> dict[str, Any]:
    """Assert the page reads well on the phone, save its screenshot; `wide_tables`: how many
    cards must scroll sideways (at least), each with its hint."""
    # The hint is set once the page has loaded and after every htmx swap.
    page.wait_for_load_state("load")
    layout = page.evaluate(LAYOUT)
    screenshot(page, name)
    assert layout["pageWidth"] <= layout["width"], "the page itself scrolls sideways"
    assert layout["broken"] == [], f"words broken in the middle: {layout['broken']}"
    assert layout["clipped"] == [], f"text past the screen: {layout['clipped']}"
    for card in layout["cards"]:
        assert card["hinted"] == card["scrolls"], card
    assert sum(card["scrolls"] for card in layout["cards"]) >= wide_tables
    for chart in layout["bars"]:
        assert chart["fits"] and chart["bars"] == chart["barsInside"], chart
        assert chart["tickPx"] >= 9, chart  # labels drawn large enough to read
    return layout


def seven_digit_run_ids() -> None:
    """The next run gets a seven-digit id, on PostgreSQL and on SQLite alike."""
    table = SyncRun._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1234566)")
        else:
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, 1234566)", [table])


def synced_sync(sandbox: Any) -> Any:
    """A sync of 40 members with an external id and 5 devices without one, run once through
    the simulator: a chart bar today, a history, a timeline, and skipped members by reason."""
    members = [Identity("external_id", f"lapsed-buyer-{n:04d}") for n in range(40)]
    members += [Identity("device_id", f"demo-device-{n:03d}-unidentified") for n in range(5)]
    sync = make_sync(
        name="Demo: lapsed buyers → Braze sandbox",
        cohort=make_cohort(name="Demo: lapsed buyers", members=members),
        connection=make_simulator_connection(sandbox),
        orm=True,
    )
    start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    return sync


def test_home_sync_and_run_pages_read_well_on_a_phone(
    phone, live_server, sandbox, transactional_db
):
    expect = expect_of()
    make_user(Role.VIEWER, email="vic@example.com")
    sync = synced_sync(sandbox)
    run = SyncRun.objects.get()
    assert (run.added, run.skipped) == (40, 5)
    log_in(phone, live_server, "vic@example.com")

    expect(phone.locator("#home-syncs")).to_contain_text("lapsed buyers")
    home = check_layout(phone, "phone-home")
    [chart] = home["bars"]
    assert chart["bars"] == 1  # today's bar, in view

    phone.goto(live_server.url + reverse("syncs:sync_detail", args=[sync.pk]))
    expect(phone.locator("#run-history th", has_text="Duration")).to_be_attached()
    check_layout(phone, "phone-sync", wide_tables=1)

    phone.goto(live_server.url + reverse("syncs:run_detail", args=[sync.pk, run.pk]))
    expect(phone.locator(".run-facts .badge")).to_have_text("Succeeded")
    expect(phone.locator(".error-groups")).to_contain_text("demo-device-000-unidentified")
    check_layout(phone, "phone-run", wide_tables=1)


def test_the_sync_wizard_reads_well_on_a_phone(phone, live_server, sandbox, transactional_db):
    expect = expect_of()
    make_user(Role.MARKETER, email="mia@example.com")
    make_cohort(
        name="Demo: lapsed buyers",
        members=[Identity("external_id", f"u{n}", extras=(("gaid", f"g{n}"),)) for n in range(30)],
    )
    make_simulator_connection(sandbox)
    log_in(phone, live_server, "mia@example.com")
    phone.goto(live_server.url + reverse("syncs:sync_create"))

    form = phone.locator("#wizard-form")
    expect(form).to_have_attribute("data-step", "cohort")
    check_layout(phone, "phone-wizard-cohort")
    phone.select_option("#id_cohort", label="Demo: lapsed buyers (30 members)")
    phone.click("#next")
    expect(form).to_have_attribute("data-step", "destination")
    phone.select_option("#id_connection", label="Braze sandbox (Braze)")
    phone.click("#next")
    expect(form).to_have_attribute("data-step", "identifier")
    # The intro above the coverage table wraps on the screen; the table scrolls, and says so.
    check_layout(phone, "phone-wizard-identifier", wide_tables=1)
    phone.check("input[name=primary_identifier][value=external_id]")
    phone.click("#next")
    expect(form).to_have_attribute("data-step", "cadence")
    check_layout(phone, "phone-wizard-cadence")
    phone.check("input[name=cadence][value=once]")
    phone.click("#next")
    expect(form).to_have_attribute("data-step", "preview")
    check_layout(phone, "phone-wizard-preview")


def test_on_a_laptop_the_same_pages_have_no_card_to_scroll(
    page, live_server, sandbox, transactional_db
):
    make_user(Role.VIEWER, email="vic@example.com")
    seven_digit_run_ids()  # a deployment's runs number in the millions: the history still fits
    sync = synced_sync(sandbox)
    run = SyncRun.objects.get()
    assert run.pk > 1_000_000
    log_in(page, live_server, "vic@example.com")
    for name, url in (
        ("laptop-home", reverse("home")),
        ("laptop-sync", reverse("syncs:sync_detail", args=[sync.pk])),
        ("laptop-run", reverse("syncs:run_detail", args=[sync.pk, run.pk])),
    ):
        page.goto(live_server.url + url)
        layout = check_layout(page, name)
        assert not any(card["scrolls"] for card in layout["cards"]), name
