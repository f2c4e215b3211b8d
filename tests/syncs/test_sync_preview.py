"""The sync preview: identifier coverage, and the next run's plan compared with what a real run
then does (a real worker, a real Redis, the partner simulator over HTTP)."""

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from cohorts.membership import Identity, apply_changes
from cohorts.models import CohortMember
from syncs.engine import diff
from syncs.models import Sync, SyncRun
from syncs.pages.preview import identifier_coverage, preview_new_sync, preview_sync_change
from syncs.services import start_run, update_sync
from tests.base import make_connection
from tests.factories import make_simulator_connection, make_sync
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db


def mixed_identities(start, count):
    """Members of four shapes in turn: a device with a GAID; an external id with a GAID and an
    IDFV; a bare external id; a user alias, every other one with a Braze id."""
    identities = []
    for n in range(start, start + count):
        shape = n % 4
        if shape == 0:
            identities.append(Identity("device_id", f"d{n}", extras=(("gaid", f"g{n}"),)))
        elif shape == 1:
            extras = (("gaid", f"g{n}"), ("idfv", f"v{n}"))
            identities.append(Identity("external_id", f"u{n}", extras=extras))
        elif shape == 2:
            identities.append(Identity("external_id", f"u{n}"))
        else:
            extras = (("braze_id", f"b{n}"),) if n % 8 == 3 else ()
            identities.append(Identity("user_alias", f"a{n}", "crm", extras=extras))
    return identities


def fill(cohort, identities):
    apply_changes(cohort.pk, add=identities, update_extras=True)


def test_coverage_counts_every_identifier_exactly_in_a_mixed_cohort(cohort):
    fill(cohort, mixed_identities(0, 100))
    coverage = identifier_coverage(cohort.pk, ["external_id", "braze_id"])
    assert coverage.total == 100
    assert coverage.by_identifier == {
        "external_id": 50,
        "device_id": 25,
        "user_alias": 25,
        "braze_id": 13,
        "idfa": 0,
        "idfv": 25,
        "gaid": 50,
        "oaid": 0,
        "amplitude_id": 0,
    }
    assert coverage.percent("gaid") == 50.0
    # The mapping's reach is exactly the members diff.recipient_for would send.
    members = CohortMember.objects.filter(cohort=cohort)
    sendable = [m for m in members if diff.recipient_for(m, ["external_id", "braze_id"])]
    assert coverage.usable == len(sendable) == 63


def test_an_empty_extra_identifier_does_not_count_as_present(cohort):
    fill(cohort, [Identity("external_id", "u1")])
    CohortMember.objects.filter(cohort=cohort).update(gaid="")
    coverage = identifier_coverage(cohort.pk, ["gaid"])
    assert (coverage.by_identifier["gaid"], coverage.usable) == (0, 0)


def test_coverage_is_one_query_whatever_the_cohort_size(cohort, django_assert_num_queries):
    fill(cohort, mixed_identities(0, 300))
    with django_assert_num_queries(1):
        identifier_coverage(cohort.pk, ["gaid", "external_id"])


def test_requests_and_time_follow_the_batch_size_and_the_rate_limit(cohort):
    fill(cohort, [Identity("external_id", f"u{n}") for n in range(120)])
    connection = make_connection(
        objects_per_request=50, rate_limit_requests=10, rate_limit_seconds=2
    )
    preview = preview_new_sync(cohort_id=cohort.pk, connection=connection, mapping=["external_id"])
    assert (preview.to_add, preview.adds, preview.skipped, preview.removes) == (120, 120, 0, 0)
    assert preview.requests == 3  # 50 + 50 + 20
    assert preview.seconds == pytest.approx(0.6)  # 3 requests at 10 per 2 s
    assert preview.pace.text == ("10 requests per 2 s; the partner's answer time is not known yet")
    assert not preview.held


def test_the_time_follows_the_partners_answer_time_over_the_requests_in_flight(cohort):
    fill(cohort, [Identity("external_id", f"u{n}") for n in range(75 * 40)])
    connection = make_connection(max_concurrent_requests=8)
    run = SyncRun.objects.create(
        sync=make_sync(connection=connection, name="earlier"),
        trigger=SyncRun.Trigger.MANUAL,
        status=SyncRun.Status.SUCCEEDED,
        partner_latency_ms=200,
    )
    SyncRun.objects.filter(pk=run.pk).update(finished_at=run.queued_at)
    Sync.objects.filter(pk=run.sync_id).update(last_run_at=run.queued_at)  # as finish_run does
    preview = preview_new_sync(cohort_id=cohort.pk, connection=connection, mapping=["external_id"])
    # 40 requests, 8 at a time, 200 ms each: 5 rounds, 1 s, where the rate limit (3,000 per
    # 3 s) alone would say 0.04 s.
    assert preview.requests == 40
    assert preview.seconds == pytest.approx(1.0)
    assert preview.pace.text == (
        "3,000 requests per 3 s, 8 in flight, the partner answering in 200 ms (its latest run)"
    )


@pytest.mark.usefixtures("rq_redis")
def test_a_run_records_how_long_the_partner_took_to_answer(cohort, sandbox):
    requests_module = pytest.importorskip("requests")
    requests_module.post(
        f"{sandbox.url}/_sandbox/faults", json={"partner": "braze", "latency_ms": 30}, timeout=5
    ).raise_for_status()
    fill(cohort, [Identity("external_id", f"u{n}") for n in range(150)])
    sync = make_sync(cohort=cohort, connection=make_simulator_connection(sandbox))
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.partner_latency_ms is not None and run.partner_latency_ms >= 30


def test_an_appsflyer_preview_uses_its_batch_size_and_the_engines_default_pace(cohort):
    fill(cohort, mixed_identities(0, 40))
    connection = make_connection("appsflyer", batch_size=7)
    preview = preview_new_sync(cohort_id=cohort.pk, connection=connection, mapping=["gaid"])
    assert (preview.adds, preview.skipped) == (20, 20)
    assert preview.pace.batch_size == 7
    assert preview.pace.text.startswith("100 requests per 1 s")


def test_a_page_of_skipped_members_costs_no_request(cohort):
    """The engine pages by member id: the count follows its pages, not just the usable total."""
    for start in range(0, 30, 10):
        fill(cohort, [Identity("external_id", f"u{start + n}") for n in range(10)])
        fill(cohort, [Identity("device_id", f"d{start}-{n}") for n in range(40)])
    connection = make_connection(objects_per_request=50)
    preview = preview_new_sync(cohort_id=cohort.pk, connection=connection, mapping=["external_id"])
    assert (preview.adds, preview.skipped) == (30, 120)
    assert preview.requests == 3  # not ceil(30 / 50): each page of 50 holds 10 usable members


@pytest.mark.parametrize("size", [10, 200])
def test_previews_cost_the_same_queries_for_any_cohort_size(cohort, size):
    fill(cohort, mixed_identities(0, size))
    connection = make_connection()
    sync = make_sync(name="s", cohort=cohort, connection=connection)
    with CaptureQueriesContext(db) as new:
        preview_new_sync(cohort_id=cohort.pk, connection=connection, mapping=["external_id"])
    with CaptureQueriesContext(db) as change:
        preview_sync_change(
            sync=sync, mapping=["braze_id"], leaving_members="remove", threshold_pct=50
        )
    # One more each for the connection's latest answer time (the time estimate).
    assert (len(new), len(change)) == (2, 3)


# Against a real run


@pytest.fixture
def braze(sandbox):
    return make_simulator_connection(sandbox, objects_per_request=50)


def run_once(sync):
    run, created = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    assert created
    run_jobs()
    run.refresh_from_db()
    return run


def plan_of(preview):
    return {
        "adds": preview.adds,
        "skipped": preview.skipped,
        "removes": preview.removes,
        "requests": preview.requests,
    }


def done_by(run):
    return {
        "adds": run.added,
        "skipped": run.skipped,
        "removes": run.removed,
        "requests": run.requests,
    }


@pytest.mark.usefixtures("rq_redis")
def test_the_new_sync_preview_is_what_the_first_run_does(cohort, braze):
    # Interleaved so that usable and skipped members share pages.
    fill(cohort, mixed_identities(0, 70))
    fill(cohort, [Identity("device_id", f"x{n}") for n in range(60)])
    fill(cohort, mixed_identities(70, 50))
    mapping = ["external_id", "braze_id"]
    preview = preview_new_sync(cohort_id=cohort.pk, connection=braze, mapping=mapping)
    sync = make_sync(cohort=cohort, connection=braze, mapping=mapping)
    run = run_once(sync)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert plan_of(preview) == done_by(run)
    assert preview.adds == 60 + 15 and preview.to_add == run.planned_adds == 180


@pytest.mark.usefixtures("rq_redis")
def test_the_edit_preview_is_what_the_next_run_does(cohort, braze):
    fill(cohort, mixed_identities(0, 80))
    sync = make_sync(cohort=cohort, connection=braze, leaving_members=Sync.Leaving.KEEP)
    assert run_once(sync).added == 40
    # 12 sent members leave; 30 new ones arrive; the mapping gains a fallback; leavers go.
    apply_changes(cohort.pk, remove=[Identity("external_id", f"u{n}") for n in range(1, 48, 4)])
    fill(cohort, mixed_identities(80, 30))
    preview = preview_sync_change(
        sync=sync, mapping=["external_id", "braze_id"], leaving_members="remove", threshold_pct=50
    )
    assert (preview.in_destination, preview.removes, preview.left_kept) == (40, 12, 0)
    assert not preview.held
    assert preview.notes  # already-sent members keep their identifier
    update_sync(
        sync=sync,
        actor=None,
        identifier_mapping=["external_id", "braze_id"],
        leaving_members="remove",
    )
    run = run_once(sync)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert plan_of(preview) == done_by(run)
    # Unsent members from before (aliases, devices) are looked at again under the new mapping.
    assert preview.to_add == run.planned_adds == 40 + 30


@pytest.mark.usefixtures("rq_redis")
def test_the_edit_preview_says_when_the_guard_will_hold_the_run(cohort, braze):
    fill(cohort, [Identity("external_id", f"u{n}") for n in range(10)])
    sync = make_sync(cohort=cohort, connection=braze, leaving_members=Sync.Leaving.KEEP)
    run_once(sync)
    apply_changes(cohort.pk, remove=[Identity("external_id", f"u{n}") for n in range(6)])
    kept = preview_sync_change(
        sync=sync, mapping=["external_id"], leaving_members="keep", threshold_pct=50
    )
    assert (kept.removes, kept.left_kept, kept.held) == (0, 6, False)
    removing = preview_sync_change(
        sync=sync, mapping=["external_id"], leaving_members="remove", threshold_pct=50
    )
    assert (removing.removes, removing.held) == (6, True)
    assert not preview_sync_change(
        sync=sync, mapping=["external_id"], leaving_members="remove", threshold_pct=60
    ).held
    update_sync(sync=sync, actor=None, leaving_members="remove")
    assert run_once(sync).status == SyncRun.Status.HELD


def test_the_edit_preview_says_sent_members_keep_the_old_membership_attributes(cohort):
    fill(cohort, [Identity("external_id", "u1")])
    sync = make_sync(name="s", cohort=cohort)

    sync.ledger.create(id_type="external_id", value="u1", dest_type="external_id", dest_value="u1")

    def notes(options):
        return preview_sync_change(
            sync=sync,
            mapping=["external_id"],
            leaving_members="remove",
            threshold_pct=50,
            options=options,
        ).notes

    assert notes({}) == []
    assert notes({"membership_mode": "array"}) == []  # the connection's mode, said explicitly
    [note] = notes({"membership_mode": "boolean"})
    assert "keep the membership attributes written the old way" in note
