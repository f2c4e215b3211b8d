"""The sync engine end to end: a real RQ worker, a real Redis, the partner simulator over HTTP."""

import pytest
import requests

from cohorts.membership import Identity, apply_changes
from connections.models import Connection
from core.models import AuditEntry
from syncs.models import Sync, SyncedMember, SyncRun, SyncRunError
from syncs.services import start_run
from tests.base import make_connection
from tests.factories import make_sync
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


def ext(value):
    return Identity("external_id", value)


def run(sync):
    started, created = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    assert created
    run_jobs()
    started.refresh_from_db()
    return started


def profile(sandbox, external_id):
    response = requests.get(
        f"{sandbox.url}/_sandbox/braze/profiles/external_id:{external_id}", timeout=5
    )
    if response.status_code == 404:
        return None
    return response.json()["attributes"]


def users_track_requests(sandbox):
    stats = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()["requests"]
    return sum(stats.get("POST /users/track", {}).values())


def in_destination(sandbox, values):
    return {
        value
        for value in values
        if "Churn risk" in ((profile(sandbox, value) or {}).get("cohortsync_cohorts") or [])
    }


def test_a_run_sends_the_cohort_and_a_second_run_sends_only_the_changes(
    cohort, connection, sandbox
):
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(200)])
    sync = make_sync(cohort=cohort, connection=connection)

    first = run(sync)
    assert first.status == SyncRun.Status.SUCCEEDED
    assert (first.planned_adds, first.added, first.failed, first.skipped) == (200, 200, 0, 0)
    assert first.requests == 3  # 75 + 75 + 50
    assert in_destination(sandbox, [f"u{n}" for n in range(200)]) == {f"u{n}" for n in range(200)}
    assert SyncedMember.objects.filter(sync=sync).count() == 200

    apply_changes(cohort.pk, add=[ext("new-1")], remove=[ext("u0"), ext("u1")])
    before = users_track_requests(sandbox)
    second = run(sync)
    assert second.status == SyncRun.Status.SUCCEEDED
    assert (second.planned_adds, second.planned_removes) == (1, 2)
    assert (second.added, second.removed) == (1, 2)
    assert users_track_requests(sandbox) - before == 1  # the add and the removals, one request
    assert in_destination(sandbox, ["u0", "u1", "u2", "new-1"]) == {"u2", "new-1"}
    sync.refresh_from_db()
    assert sync.last_run_status == SyncRun.Status.SUCCEEDED
    assert sync.last_run_summary == "+1 -2"


def test_members_without_a_usable_identifier_are_skipped_with_the_reason(
    cohort, connection, sandbox
):
    apply_changes(cohort.pk, add=[ext("u1"), Identity("device_id", "dev-1")])
    finished = run(make_sync(cohort=cohort, connection=connection))
    assert finished.status == SyncRun.Status.SUCCEEDED
    assert (finished.planned_adds, finished.added, finished.skipped) == (2, 1, 1)
    error = SyncRunError.objects.get(run=finished)
    assert error.member == "device_id:dev-1"
    assert "No usable identifier" in error.reason


def test_the_mapping_falls_back_in_order(cohort, connection, sandbox):
    apply_changes(
        cohort.pk,
        add=[Identity("device_id", "dev-1", extras=(("braze_id", "b-1"),))],
        update_extras=True,
    )
    finished = run(
        make_sync(cohort=cohort, connection=connection, mapping=["external_id", "braze_id"])
    )
    assert finished.added == 1
    assert SyncedMember.objects.get().dest_type == "braze_id"


def test_keeping_leaving_members_sends_no_removal(cohort, connection, sandbox):
    apply_changes(cohort.pk, add=[ext("u1"), ext("u2")])
    sync = make_sync(cohort=cohort, connection=connection, leaving_members=Sync.Leaving.KEEP)
    run(sync)
    apply_changes(cohort.pk, remove=[ext("u1")])
    second = run(sync)
    assert (second.planned_removes, second.removed) == (0, 0)
    assert in_destination(sandbox, ["u1"]) == {"u1"}


def test_a_mass_removal_is_held_for_approval(cohort, connection, sandbox):
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(10)])
    sync = make_sync(cohort=cohort, connection=connection)
    run(sync)
    apply_changes(cohort.pk, remove=[ext(f"u{n}") for n in range(6)])
    held = run(sync)
    assert held.status == SyncRun.Status.HELD
    assert "would remove 6 of the 10" in held.error_summary
    assert held.removed == 0
    assert SyncedMember.objects.filter(sync=sync).count() == 10


def test_a_refused_key_fails_the_run_pauses_the_syncs_and_alerts_once(cohort, sandbox):
    bad = make_connection(endpoint=sandbox.url, secret="braze-key-nobody-knows-0000")
    apply_changes(cohort.pk, add=[ext("u1")])
    sync = make_sync(cohort=cohort, connection=bad)
    other = make_sync(cohort=cohort, connection=bad)
    finished = run(sync)
    assert finished.status == SyncRun.Status.FAILED
    assert "refused the credentials" in finished.error_summary
    assert finished.failed == finished.planned_adds == 1  # counts add up
    bad.refresh_from_db()
    assert bad.state == Connection.State.NEEDS_ATTENTION
    assert set(
        Sync.objects.filter(pk__in=[sync.pk, other.pk]).values_list("status", flat=True)
    ) == {Sync.Status.NEEDS_ATTENTION}
    assert AuditEntry.objects.filter(action="connection.auth_failed").count() == 1


def test_a_5xx_burst_is_retried_and_the_retries_are_recorded(cohort, connection, sandbox):
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"partner": "braze", "statuses": [503, 502]},
        timeout=5,
    ).raise_for_status()
    apply_changes(cohort.pk, add=[ext("u1")])
    finished = run(make_sync(cohort=cohort, connection=connection))
    assert finished.status == SyncRun.Status.SUCCEEDED
    assert finished.retries == 2
    assert finished.requests == 3
    assert finished.added == 1


def test_two_run_requests_make_one_run(cohort, connection):
    sync = make_sync(cohort=cohort, connection=connection)
    first, created = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    second, created_again = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    assert created and not created_again
    assert first.pk == second.pk
    assert SyncRun.objects.filter(sync=sync).count() == 1


def test_a_resumed_run_goes_on_from_its_checkpoint_and_counts_add_up(cohort, connection, sandbox):
    apply_changes(cohort.pk, add=[ext(f"u{n:03d}") for n in range(200)])
    sync = make_sync(cohort=cohort, connection=connection)
    first = run(sync)
    # Pretend the worker died after the first checkpoint of a later run: rewind that run's
    # state to it by hand, drop the rest of the ledger, and let the reaper's resume run it.
    members = list(sync.cohort.members.order_by("id").values_list("id", flat=True))
    SyncedMember.objects.filter(sync=sync, value__gte="u075").delete()
    SyncRun.objects.filter(pk=first.pk).update(
        status=SyncRun.Status.QUEUED,
        interruptions=1,
        added=75,
        add_cursor=members[74],
        requests=1,
    )
    before = users_track_requests(sandbox)
    from syncs.queue import enqueue_run

    enqueue_run(first.pk, attempt=1)
    run_jobs()
    first.refresh_from_db()
    assert first.status == SyncRun.Status.SUCCEEDED
    assert (first.planned_adds, first.added, first.failed, first.skipped) == (200, 200, 0, 0)
    assert users_track_requests(sandbox) - before == 2  # only the 125 not yet checkpointed
    assert SyncedMember.objects.filter(sync=sync).count() == 200


def test_members_added_during_a_run_wait_for_the_next_one(cohort, connection, sandbox):
    apply_changes(cohort.pk, add=[ext("u1")])
    sync = make_sync(cohort=cohort, connection=connection)
    started, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    from syncs.engine.run import RunSender

    original_plan = RunSender._plan

    def plan_then_grow(sender):
        original_plan(sender)
        apply_changes(cohort.pk, add=[ext("late")])

    from unittest import mock

    with mock.patch.object(RunSender, "_plan", plan_then_grow):
        run_jobs()
    started.refresh_from_db()
    assert (started.planned_adds, started.added) == (1, 1)
    assert run(sync).added == 1  # "late" goes in the next run


def test_an_appsflyer_sync_makes_its_audience_and_halves_batches_the_partner_refuses(
    cohort, sandbox
):
    from connections.models import Connection
    from connections.sandbox import DEMO_APPSFLYER_TOKEN

    requests.post(
        f"{sandbox.url}/_sandbox/config", json={"appsflyer_max_devices": 40}, timeout=5
    ).raise_for_status()
    connection = make_connection(
        "appsflyer", endpoint=sandbox.url, secret=DEMO_APPSFLYER_TOKEN, batch_size=100
    )
    apply_changes(cohort.pk, add=[ext(f"u{n}") for n in range(150)])
    sync = make_sync(name="Churn → AppsFlyer", cohort=cohort, connection=connection)
    finished = run(sync)
    assert finished.status == SyncRun.Status.SUCCEEDED, finished.error_summary
    assert finished.added == 150
    sync.refresh_from_db()
    import_key = sync.options["import_key"]
    audience = requests.get(
        f"{sandbox.url}/_sandbox/appsflyer/audiences/{import_key}", timeout=5
    ).json()
    assert audience["name"].startswith("Churn risk-")
    assert len(audience["members"]) == 150
    assert Connection.objects.get(pk=connection.pk).config["batch_size"] <= 40
