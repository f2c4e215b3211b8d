"""Issue #15: a run keeps its first batches' requests and every one the partner refused or left
unanswered, redacted, and its page shows them, so a marketer can read a partner error without
the logs.

The engine runs in this process with its sleep injected (backoff costs no time), against the
partner simulator over real HTTP. One request in flight at a time, so which batch meets which
answer is fixed.
"""

import html
import json
import re
import socket

import pytest
import requests
from django.urls import reverse

from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort
from connections.models import Connection
from connections.sandbox import DEMO_APPSFLYER_TOKEN, DEMO_BRAZE_KEY
from syncs.engine import exchanges
from syncs.engine.run import run_sync
from syncs.models import SyncRun, SyncRunExchange
from syncs.services import start_run
from tests.factories import make_connection, make_simulator_connection, make_sync
from tests.faults.simulator import BATCH, PartnerScript, Sleeps

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


def fill(cohort: Cohort, size: int) -> set[str]:
    values = {f"member-{n:05}" for n in range(size)}
    apply_changes(cohort.pk, add=[Identity("external_id", value) for value in values])
    return values


def run_to_the_end(connection: Connection, cohort: Cohort, sleeps: Sleeps | None = None):
    sync = make_sync(name="Exchanges", cohort=cohort, connection=connection)
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_sync(run.pk, sleep=sleeps or Sleeps())
    run.refresh_from_db()
    return run


def kept(run: SyncRun) -> list[tuple[int, int, int | None]]:
    rows = SyncRunExchange.objects.filter(run=run).order_by("id")
    return list(rows.values_list("batch", "attempt", "status"))


def stored_text(run: SyncRun) -> str:
    rows = SyncRunExchange.objects.filter(run=run)
    return json.dumps(list(rows.values_list("method", "path", "request", "answer", "note")))


def page_text(client, run: SyncRun) -> str:
    response = client.get(reverse("syncs:run_detail", args=[run.sync_id, run.pk]))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


@pytest.fixture
def braze_one_at_a_time(sandbox) -> Connection:
    return make_simulator_connection(sandbox, max_concurrent_requests=1)


def test_a_503_and_a_429_are_kept_with_the_first_batches_and_shown_redacted(
    cohort, braze_one_at_a_time, sandbox, monkeypatch, viewer_client
):
    # Requests 1-6 are batches 1-6; batch 7 meets a 503 and batch 8 a 429, each then accepted.
    monkeypatch.setattr(sandbox.state, "pop_fault", PartnerScript({7: 503, 9: 429}))
    members = fill(cohort, 10 * BATCH)

    run = run_to_the_end(braze_one_at_a_time, cohort)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert kept(run) == [(n, 1, 201) for n in range(1, 6)] + [(7, 1, 503), (8, 1, 429)]
    assert run.exchanges_left_out == 0
    refused = SyncRunExchange.objects.get(run=run, status=503)
    assert (refused.method, refused.path) == ("POST", "/users/track")
    assert json.loads(refused.answer) == {"message": "Service Unavailable"}
    request = json.loads(refused.request)
    assert request["attributes"][3] == f"… and {BATCH - 3} more objects"
    sampled = [obj["external_id"] for obj in request["attributes"][:3]]
    assert len(sampled) == 3 and set(sampled) <= members

    # Every member shown is one of the three sampled of a kept batch; never the key.
    text = stored_text(run)
    shown = {member for member in members if member in text}
    samples = {
        obj["external_id"]
        for row in SyncRunExchange.objects.filter(run=run)
        for obj in json.loads(row.request)["attributes"][:3]
    }
    assert shown == samples and len(samples) == 7 * 3
    assert DEMO_BRAZE_KEY not in text

    page = page_text(viewer_client, run)
    assert "Requests and answers" in page
    count = re.search(r'class="muted small exchanges-count">([^<]*)<', page)
    assert count is not None and count.group(1) == "7 kept, 2 of them refused or unanswered"
    assert page.count('class="exchange failed"') == 2
    assert "503 Service Unavailable" in page and "429 Too Many Requests" in page
    assert '"message": "Service Unavailable"' in page
    assert all(member in page for member in sampled)
    assert f"… and {BATCH - 3} more objects" in page
    assert {member for member in members if member in page} <= samples
    assert DEMO_BRAZE_KEY not in page
    assert "not kept" not in page


def test_a_failed_appsflyer_run_shows_every_attempt_and_never_the_token(
    cohort, sandbox, monkeypatch, marketer_client
):
    connection = make_connection(
        "appsflyer",
        endpoint=sandbox.url,
        secret=DEMO_APPSFLYER_TOKEN,
        batch_size=20,
        max_concurrent_requests=1,
    )
    # Request 1 creates the audience; batch 1 then meets a 500 at each of its six attempts.
    monkeypatch.setattr(sandbox.state, "pop_fault", PartnerScript({n: 500 for n in range(2, 8)}))
    members = fill(cohort, 50)

    run = run_to_the_end(connection, cohort)

    assert run.status == SyncRun.Status.FAILED
    assert kept(run) == [(1, attempt, 500) for attempt in range(1, 7)]
    first = SyncRunExchange.objects.filter(run=run).first()
    assert first is not None
    assert first.path == "/api/audiences-import-api/v2/add"
    request = json.loads(first.request)
    assert request["import_key"] == run.sync.options["import_key"]
    assert request["devices"][3] == "… and 17 more devices"
    text = stored_text(run)
    assert DEMO_APPSFLYER_TOKEN not in text
    assert len({member for member in members if member in text}) == 3

    page = page_text(marketer_client, run)
    assert page.count('class="exchange failed"') == 6
    assert "500 Internal Server Error" in page
    assert "… and 17 more devices" in page
    assert DEMO_APPSFLYER_TOKEN not in page


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def unreachable_braze(db) -> Connection:
    return make_connection(
        endpoint=f"http://127.0.0.1:{closed_port()}",
        secret=DEMO_BRAZE_KEY,
        max_concurrent_requests=1,
    )


def test_requests_nobody_answered_are_kept_with_the_reason(
    cohort, unreachable_braze, viewer_client
):
    fill(cohort, 10)

    run = run_to_the_end(unreachable_braze, cohort)

    assert run.status == SyncRun.Status.FAILED
    assert kept(run) == [(1, attempt, None) for attempt in range(1, 7)]
    row = SyncRunExchange.objects.filter(run=run).first()
    assert row is not None
    assert row.answer == ""
    assert row.note.startswith("Could not reach 127.0.0.1:")
    page = page_text(viewer_client, run)
    assert page.count("No answer") == 6
    assert "(no answer)" in page


def test_past_the_cap_refusals_are_counted_and_the_answer_that_stopped_the_run_is_kept(
    cohort, unreachable_braze, monkeypatch, viewer_client
):
    monkeypatch.setattr(exchanges, "KEPT_PER_RUN", 3)
    fill(cohort, 10)

    run = run_to_the_end(unreachable_braze, cohort)

    assert kept(run) == [(1, 1, None), (1, 2, None), (1, 3, None), (1, 6, None)]
    assert run.exchanges_left_out == 2
    assert "2 more refused or unanswered requests were not kept" in page_text(viewer_client, run)


def test_a_429_storm_keeps_ten_of_its_answers_and_counts_the_rest(
    cohort, braze_one_at_a_time, sandbox, viewer_client
):
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"partner": "braze", "statuses": [429] * 25},
        timeout=5,
    ).raise_for_status()
    fill(cohort, 2 * BATCH)

    run = run_to_the_end(braze_one_at_a_time, cohort)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert kept(run) == [(1, n, 429) for n in range(1, 11)] + [(1, 26, 201), (2, 1, 201)]
    assert run.exchanges_left_out == 15
    page = page_text(viewer_client, run)
    assert "15 more refused or unanswered requests were not kept" in page


def test_an_ordinary_batch_past_the_first_few_keeps_nothing(cohort, braze_one_at_a_time):
    fill(cohort, 8 * BATCH)

    run = run_to_the_end(braze_one_at_a_time, cohort)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert kept(run) == [(n, 1, 201) for n in range(1, 6)]


def test_a_runs_exchanges_go_with_it(cohort, braze_one_at_a_time):
    fill(cohort, BATCH)
    run = run_to_the_end(braze_one_at_a_time, cohort)
    assert SyncRunExchange.objects.filter(run=run).count() == 1
    run.delete()
    assert not SyncRunExchange.objects.exists()


def test_a_resumed_run_numbers_its_batches_again_and_carries_the_cap_over(
    cohort, braze_one_at_a_time, sandbox, viewer_client
):
    fill(cohort, 3 * BATCH)
    sync = make_sync(name="Exchanges", cohort=cohort, connection=braze_one_at_a_time)
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    # What an earlier part of the run kept before it was interrupted: 48 of its 50.
    SyncRun.objects.filter(pk=run.pk).update(interruptions=1)
    SyncRunExchange.objects.bulk_create(
        SyncRunExchange(run=run, batch=n, attempt=1, status=201, method="POST", path="/users/track")
        for n in range(1, 49)
    )
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"partner": "braze", "statuses": [503]}, timeout=5
    ).raise_for_status()

    run_sync(run.pk, sleep=Sleeps())

    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    resumed = SyncRunExchange.objects.filter(run=run, interruptions=1).order_by("id")
    # Batch 1 of this part: its 503 and its retry; batches 2 and 3 find no room left.
    assert list(resumed.values_list("batch", "attempt", "status")) == [(1, 1, 503), (1, 2, 201)]
    assert SyncRunExchange.objects.filter(run=run).count() == exchanges.KEPT_PER_RUN
    assert run.exchanges_left_out == 0  # accepted batches are not "left out" refusals
    assert "Batch 1 after resume 1" in page_text(viewer_client, run)
