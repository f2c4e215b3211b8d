"""The member lookup: any identifier finds the member's cohorts, and for each sync whether the
destination has it, removed it, failed or skipped it, or has not been sent it; syncs that knew
the member after it left their cohort too; in a fixed number of queries."""

import pytest
import requests
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cohorts.membership import Identity, apply_changes
from syncs.models import SyncedMember, SyncRemoval, SyncRun, SyncRunError
from syncs.pages.member_lookup import look_up_member
from syncs.services import start_run
from tests.base import make_connection
from tests.factories import make_cohort, make_run, make_sync
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db
URL = "/members/"


ALICE = Identity("external_id", "alice", extras=(("braze_id", "b-alice"), ("idfa", "IDFA-1")))


def states(result):
    return {
        (membership.member.cohort.name, state.sync.name): state.state
        for membership in result.memberships
        for state in membership.syncs
    }


def test_each_sync_of_each_cohort_says_where_the_member_stands():
    churn = make_cohort(name="Churn", members=[ALICE, Identity("external_id", "bob")])
    vip = make_cohort(name="VIP", members=[ALICE])
    sent, failing, unsent = (
        make_sync(cohort=churn, name=name) for name in ("Sent", "Failing", "Unsent")
    )
    skipping = make_sync(cohort=vip, name="Skipping", mapping=("braze_id", "external_id"))
    sent_run = make_run(sent)
    SyncedMember.objects.create(
        sync=sent,
        id_type="external_id",
        value="alice",
        dest_type="external_id",
        dest_value="alice",
        run=sent_run,
    )
    failed_run = make_run(failing, status=SyncRun.Status.PARTIALLY_FAILED)
    SyncRunError.objects.create(
        run=failed_run,
        operation="add",
        member="external_id:alice",
        reason="Invalid external_id",
        partner_status=201,
    )
    SyncRunError.objects.create(
        run=make_run(skipping),
        operation="add",
        member="external_id:alice",
        reason="No usable identifier (braze_id → external_id)",
    )

    result = look_up_member("alice")

    assert states(result) == {
        ("Churn", "Failing"): "failed",
        ("Churn", "Sent"): "in_destination",
        ("Churn", "Unsent"): "not_sent",
        ("VIP", "Skipping"): "skipped",
    }
    in_churn = result.memberships[0]
    assert in_churn.identity == "external_id:alice"
    sent_state = next(s for s in in_churn.syncs if s.sync == sent)
    assert sent_state.in_destination.run_id == sent_run.pk
    assert sent_state.in_destination.sent_as == "external_id:alice"
    failing_state = next(s for s in in_churn.syncs if s.sync == failing)
    assert (failing_state.failure.run_id, failing_state.failure.partner_status) == (
        failed_run.pk,
        201,
    )
    assert result.former == []
    assert unsent in [s.sync for s in in_churn.syncs]


@pytest.mark.parametrize(
    ("value", "id_type", "found"),
    [
        ("b-alice", None, True),
        ("IDFA-1", None, True),
        ("IDFA-1", "idfa", True),
        ("IDFA-1", "braze_id", False),
        ("alice", "external_id", True),
        ("alice", "device_id", False),
        ("ALICE", None, False),  # exact match
        ("ali", None, False),
    ],
)
def test_any_identifier_finds_the_member_and_the_type_narrows_it(value, id_type, found):
    make_cohort(name="Churn", members=[ALICE])
    result = look_up_member(value, id_type)
    assert bool(result.memberships) is found
    if found:
        assert result.memberships[0].identity == "external_id:alice"


def test_syncs_that_knew_the_member_after_it_left_every_cohort_are_listed():
    churn = make_cohort(name="Churn", members=[Identity("external_id", "carol")])
    sync = make_sync(cohort=churn, name="Churn → Braze")
    removing = make_run(sync)
    SyncRemoval.objects.create(sync=sync, run=removing, id_type="external_id", value="carol")
    apply_changes(churn.pk, remove=[Identity("external_id", "carol")])
    old = make_sync(cohort=make_cohort(name="Old"), name="Old sync")
    SyncRunError.objects.create(
        run=make_run(old), operation="remove", member="external_id:carol", reason="Timed out"
    )

    result = look_up_member("carol")

    assert result.memberships == []
    assert [(state.sync.name, state.state) for state in result.former] == [
        ("Churn → Braze", "removed"),
        ("Old sync", "failed"),
    ]
    assert result.former[0].removal.run_id == removing.pk


def test_the_latest_of_added_removed_and_failed_is_the_state():
    churn = make_cohort(name="Churn", members=[Identity("external_id", "dave")])
    sync = make_sync(cohort=churn, name="S")
    first, second = make_run(sync), make_run(sync)
    SyncRemoval.objects.create(sync=sync, run=first, id_type="external_id", value="dave")
    SyncedMember.objects.create(
        sync=sync,
        id_type="external_id",
        value="dave",
        dest_type="external_id",
        dest_value="dave",
        run=second,
    )
    [state] = look_up_member("dave").memberships[0].syncs
    assert state.state == "in_destination"
    assert state.removal.run_id == first.pk


def test_a_lookup_costs_the_same_queries_for_one_or_many_cohorts_and_syncs(viewer_client):
    def queries(value):
        with CaptureQueriesContext(db) as captured:
            response = viewer_client.get(URL, {"q": value})
        assert response.status_code == 200
        return len(captured)

    connection = make_connection()
    one = make_cohort(name="One", members=[Identity("external_id", "few")])
    make_sync(cohort=one, name="One sync", connection=connection)
    few = queries("few")
    for n in range(12):
        cohort = make_cohort(name=f"Cohort {n}", members=[Identity("external_id", "many")])
        sync = make_sync(cohort=cohort, name=f"Sync {n}", connection=connection)
        run = make_run(sync)
        SyncedMember.objects.create(
            sync=sync,
            id_type="external_id",
            value="many",
            dest_type="external_id",
            dest_value="many",
            run=run,
        )
        SyncRemoval.objects.create(sync=sync, run=run, id_type="external_id", value="many")
        SyncRunError.objects.create(run=run, operation="add", member="external_id:many", reason="r")
    assert queries("many") == few


def test_the_page_shows_states_with_run_links(viewer_client):
    churn = make_cohort(name="Churn", members=[ALICE])
    sync = make_sync(cohort=churn, name="Sent")
    run = make_run(sync)
    SyncedMember.objects.create(
        sync=sync,
        id_type="external_id",
        value="alice",
        dest_type="braze_id",
        dest_value="b-alice",
        run=run,
    )
    page = viewer_client.get(URL, {"q": "b-alice"}).content.decode()
    assert "In destination" in page
    assert reverse("syncs:run_detail", args=[sync.pk, run.pk]) in page
    assert "sent as <code>braze_id:b-alice</code>" in page
    assert reverse("cohorts:cohort_detail", args=[churn.pk]) in page


def test_no_match_says_so(viewer_client):
    page = viewer_client.get(URL, {"q": "nobody"}).content.decode()
    assert "No member has the identifier <code>nobody</code>" in page


def test_the_empty_form_lists_nothing(viewer_client):
    response = viewer_client.get(URL)
    assert response.status_code == 200
    assert "result" not in response.context


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"q": ""}, "This field is required."),
        ({"q": "x" * 256}, "at most 255 characters"),
        ({"q": "alice", "id_type": "email"}, "Select a valid choice."),
    ],
)
def test_bad_input_gets_a_clear_error(viewer_client, params, error):
    response = viewer_client.get(URL, params)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert "result" not in response.context


def test_outsiders_get_404_and_the_lookup_only_answers_get(outsider_client, marketer_client):
    assert outsider_client.get(URL, {"q": "alice"}).status_code == 404
    assert marketer_client.post(URL, {"q": "alice"}).status_code == 405


def test_the_menu_links_the_lookup(viewer_client):
    assert f'href="{URL}"' in viewer_client.get(reverse("syncs:sync_list")).content.decode()


@pytest.mark.usefixtures("rq_redis")
def test_after_real_runs_the_lookup_follows_a_member_in_and_out(viewer_client, connection, sandbox):
    requests.post(
        f"{sandbox.url}/_sandbox/braze/rejections",
        json={"identifiers": ["external_id:erin"], "error": "Invalid external_id"},
        timeout=5,
    ).raise_for_status()
    churn = make_cohort(name="Churn", members=["frank", "erin", "gina", "hank"])

    sync = make_sync(cohort=churn, name="Churn → Braze", connection=connection)

    def run():
        started, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
        run_jobs()
        return started

    first = run()
    assert states(look_up_member("frank")) == {("Churn", "Churn → Braze"): "in_destination"}
    [erin] = look_up_member("erin").memberships[0].syncs
    assert (erin.state, erin.failure.reason, erin.failure.run_id) == (
        "failed",
        "Invalid external_id",
        first.pk,
    )
    apply_changes(churn.pk, remove=[Identity("external_id", "frank")])
    second = run()
    result = look_up_member("frank")
    assert result.memberships == []
    [former] = result.former
    assert (former.state, former.removal.run_id) == ("removed", second.pk)
    assert former.in_destination is None
