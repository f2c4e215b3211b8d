"""Partner limits the engine learns or waits out, against the simulator over real HTTP: an
objects-per-request cap lower than the connection's, a batch refused whole for some of its
objects, 429s that must not spend a batch's attempts, a rate limit that keeps a run waiting past
its budget, and the members a stopped run never reached.

The engine runs in this process with its sleep injected (backoff costs no time) except where a
test needs the shared bucket to refill for real.
"""

import csv
import io
import time
from typing import Any

import pytest
import requests
from django.urls import reverse

from cohorts.membership import Identity, apply_changes
from connections.models import Connection
from connections.partners.braze import simulator as braze_simulator
from connections.sandbox import DEMO_APPSFLYER_TOKEN
from core.models import AuditEntry
from syncs.engine import run as engine
from syncs.engine.errors import NOT_REACHED
from syncs.engine.run import run_sync
from syncs.models import SyncRun, SyncRunError, SyncRunEvent
from syncs.pages.connection_timeline import timeline_page
from tests.factories import make_connection, make_sync
from tests.faults.simulator import BATCH, PartnerScript, Sleeps, in_destination, track_answers
from tests.faults.test_partner_faults import braze_sync, fill, ledger, queued_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]

Kind = SyncRunEvent.Kind


def sandbox_post(sandbox: Any, path: str, body: dict[str, Any]) -> None:
    requests.post(f"{sandbox.url}/_sandbox/{path}", json=body, timeout=5).raise_for_status()


def errors_of(run: SyncRun) -> dict[str, str]:
    return dict(SyncRunError.objects.filter(run=run).values_list("member", "reason"))


def test_a_connection_at_75_against_a_50_object_partner_finishes_and_remembers_50(
    cohort, simulated_braze, sandbox
):
    sandbox_post(sandbox, "config", {"braze_object_cap": 50})
    members = fill(cohort, 4 * BATCH)
    sync = braze_sync(cohort, simulated_braze)

    first = queued_run(sync)
    assert run_sync(first.pk, sleep=Sleeps()) == SyncRun.Status.SUCCEEDED
    first.refresh_from_db()
    assert first.added == len(members)
    assert in_destination(sandbox, cohort.name) == members == ledger(sync)
    # Only the batches already in flight met the refusal; the rest went out at 50.
    refused = track_answers(sandbox).get(400, 0)
    assert 1 <= refused <= engine.SENDS_IN_FLIGHT
    assert Connection.objects.get(pk=simulated_braze.pk).config["objects_per_request"] == 50
    events = SyncRunEvent.objects.filter(run=first, kind=Kind.RETRY)
    assert any("batches of 50 from now on" in event.message for event in events)
    # The connection's timeline says what changed and why.
    entry = AuditEntry.objects.get(action="connection.batch_size_learnt")
    assert entry.target_id == str(simulated_braze.pk)
    items = timeline_page(simulated_braze).items
    learnt = next(item for item in items if "Batch size lowered to 50" in item.title)
    assert "Max Input Length Exceeded" in learnt.text

    # The next run sends batches of 50 from the start: no request refused.
    fill(cohort, 4 * BATCH + 60)
    second = queued_run(sync)
    assert run_sync(second.pk, sleep=Sleeps()) == SyncRun.Status.SUCCEEDED
    assert track_answers(sandbox).get(400, 0) == refused


def test_a_batch_whose_every_object_is_refused_fails_each_member_with_its_own_reason(
    cohort, simulated_braze, sandbox
):
    apply_changes(cohort.pk, add=[Identity("external_id", f"bad-{n}") for n in range(3)])
    sandbox_post(
        sandbox,
        "braze/rejections",
        {
            "identifiers": [f"external_id:bad-{n}" for n in range(3)],
            "error": "provided external_id is blacklisted and disallowed",
        },
    )
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)

    assert run_sync(run.pk, sleep=Sleeps()) == SyncRun.Status.PARTIALLY_FAILED
    run.refresh_from_db()
    assert track_answers(sandbox) == {400: 1}
    assert (run.added, run.failed, run.requests) == (0, 3, 1)
    assert errors_of(run) == {
        f"external_id:bad-{n}": "provided external_id is blacklisted and disallowed"
        for n in range(3)
    }
    assert "not reached" not in run.error_summary


def test_the_valid_members_of_a_batch_refused_whole_are_sent_again_without_the_others(
    cohort, simulated_braze, sandbox, monkeypatch
):
    # A partner that refuses the whole request when any object is invalid, naming them.
    answer = braze_simulator._users_track

    def refuse_whole(state, headers, body):
        status, payload = answer(state, headers, body)
        if status == 201 and payload.get("errors"):
            return 400, {"message": "Invalid objects", "errors": payload["errors"]}
        return status, payload

    monkeypatch.setattr(braze_simulator, "_users_track", refuse_whole)
    good = fill(cohort, 7)
    apply_changes(cohort.pk, add=[Identity("external_id", f"bad-{n}") for n in range(3)])
    sandbox_post(
        sandbox,
        "braze/rejections",
        {"identifiers": [f"external_id:bad-{n}" for n in range(3)], "error": "bad id"},
    )
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)

    assert run_sync(run.pk, sleep=Sleeps()) == SyncRun.Status.PARTIALLY_FAILED
    run.refresh_from_db()
    assert (run.added, run.failed, run.requests) == (7, 3, 2)
    assert in_destination(sandbox, cohort.name) == good == ledger(sync)
    assert set(errors_of(run).values()) == {"bad id"}
    assert len(errors_of(run)) == 3


def test_429s_wait_for_the_partner_without_spending_the_batchs_attempts(
    cohort, simulated_braze, sandbox, monkeypatch
):
    monkeypatch.setattr(engine, "SENDS_IN_FLIGHT", 1)
    # Ten 429s in a row on the second batch, then one 503: more answers than six attempts.
    script: dict[int, Any] = {n: 429 for n in range(2, 12)}
    script[12] = 503
    monkeypatch.setattr(sandbox.state, "pop_fault", PartnerScript(script))
    members = fill(cohort, 3 * BATCH)
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)

    assert run_sync(run.pk, sleep=Sleeps()) == SyncRun.Status.SUCCEEDED
    run.refresh_from_db()
    assert run.added == len(members)
    assert run.retries == 11
    assert in_destination(sandbox, cohort.name) == members
    throttled = SyncRunEvent.objects.filter(run=run, kind=Kind.THROTTLED, details__status=429)
    assert throttled.count() == 10


def test_a_rate_limit_that_outlasts_the_runs_budget_interrupts_it_to_resume_later(
    cohort, simulated_braze, sandbox, rq_redis
):
    # One request per ten minutes: after the first batch, the shared bucket has no token for
    # longer than the run may wait in all (15 minutes by default, with 60 s at a time).
    sandbox_post(sandbox, "config", {"braze_rate_limit": 1, "braze_rate_window": 600.0})
    fill(cohort, 2 * BATCH)
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)
    sleeps = Sleeps()

    assert run_sync(run.pk, sleep=sleeps) == "interrupted"
    run.refresh_from_db()
    assert run.status == SyncRun.Status.QUEUED
    assert (run.added, run.failed, run.interruptions) == (BATCH, 0, 1)
    assert sum(sleeps.calls) <= 900
    event = SyncRunEvent.objects.filter(run=run, kind=Kind.INTERRUPTED).get()
    assert "rate limit kept this run waiting" in event.message
    assert "resumes from its last checkpoint in 5 min" in event.message
    # Its next job waits in RQ's scheduled registry, not in the queue.
    from syncs.queue import run_job_id, run_queue

    queue = run_queue()
    assert run_job_id(run.pk, 1) in queue.scheduled_job_registry.get_job_ids()
    assert run_job_id(run.pk, 1) not in queue.job_ids


def test_appsflyer_at_one_request_per_two_seconds_with_30_percent_5xx_completes(
    cohort, sandbox, monkeypatch
):
    connection = make_connection(
        "appsflyer",
        endpoint=sandbox.url,
        secret=DEMO_APPSFLYER_TOKEN,
        batch_size=40,
        rate_limit_requests=1,
        rate_limit_seconds=2,
    )
    # Three of every ten requests fail (the audience creation is the first request).
    failing = {n: 500 + n % 5 for n in range(2, 30) if n % 10 in (3, 6, 9)}
    monkeypatch.setattr(sandbox.state, "pop_fault", PartnerScript(failing))
    members = {f"af-{n:03}" for n in range(160)}
    apply_changes(cohort.pk, add=[Identity("external_id", value) for value in members])
    sync = make_sync(name="AF paced", cohort=cohort, connection=connection)
    run = queued_run(sync)

    started = time.monotonic()
    assert run_sync(run.pk) == SyncRun.Status.SUCCEEDED
    run.refresh_from_db()
    assert run.added == len(members)
    assert run.retries >= 1
    sync.refresh_from_db()
    audience = requests.get(
        f"{sandbox.url}/_sandbox/appsflyer/audiences/{sync.options['import_key']}", timeout=5
    ).json()
    assert {member["cuid"] for member in audience["members"]} == members
    # The shared bucket paced it: at least 2 s between the sends after the first.
    assert run.throttled_seconds > 0
    assert time.monotonic() - started >= 2 * 4


def test_a_stopped_runs_unreached_members_are_in_the_errors_export_with_the_reason(
    cohort, simulated_braze, sandbox, monkeypatch, admin_client
):
    monkeypatch.setattr(engine, "SENDS_IN_FLIGHT", 1)
    monkeypatch.setattr(sandbox.state, "pop_fault", PartnerScript({n: 503 for n in range(3, 9)}))
    members = fill(cohort, 4 * BATCH)
    sync = braze_sync(cohort, simulated_braze)
    run = queued_run(sync)

    assert run_sync(run.pk, sleep=Sleeps()) == SyncRun.Status.FAILED
    run.refresh_from_db()
    assert run.failed == 2 * BATCH
    response = admin_client.get(reverse("syncs:run_errors_csv", args=[sync.pk, run.pk]))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 2 * BATCH
    unreached = {row["member"].removeprefix("external_id:") for row in rows}
    assert unreached == members - ledger(sync)
    assert {row["outcome"] for row in rows} == {"failed"}
    assert all(row["reason"].startswith(f"{NOT_REACHED}: Braze answered 503") for row in rows)


def test_appsflyer_past_its_unpublished_limit_answers_bare_429s_and_the_run_waits_them_out(
    cohort, sandbox
):
    # AppsFlyer allows 2 requests a second here and says nothing of it: no rate-limit headers.
    sandbox_post(sandbox, "config", {"appsflyer_rate_limit": 2})
    connection = make_connection(
        "appsflyer", endpoint=sandbox.url, secret=DEMO_APPSFLYER_TOKEN, batch_size=20
    )
    members = {f"af-{n:03}" for n in range(200)}
    apply_changes(cohort.pk, add=[Identity("external_id", value) for value in members])
    sync = make_sync(name="AF limited", cohort=cohort, connection=connection)
    run = queued_run(sync)

    # Backoff waits are cut short (the partner's clock is real: it refills 2 a second).
    assert run_sync(run.pk, sleep=lambda seconds: time.sleep(min(seconds, 0.3))) == (
        SyncRun.Status.SUCCEEDED
    )
    run.refresh_from_db()
    assert run.added == len(members)
    answers = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()["requests"]
    imports = answers["POST /api/audiences-import-api/v2/add"]
    assert imports.get("429", 0) >= 1  # it met the limit, and no 429 spent an attempt
    assert imports["200"] == 10
    assert run.retries == imports.get("429", 0)
    sync.refresh_from_db()
    audience = requests.get(
        f"{sandbox.url}/_sandbox/appsflyer/audiences/{sync.options['import_key']}", timeout=5
    ).json()
    assert {member["cuid"] for member in audience["members"]} == members
