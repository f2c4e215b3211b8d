"""The array cap as a rule of the Braze connection (invariant 9 in docs/architecture.md).

The services refuse a sync that would make more cohorts share the connection's array attribute
than its cap, unless it writes booleans: the API, the wizard and the edit form alike. At run
time the engine never sends an add that would overflow a member's array: a sync made before the
rule, or a cap lowered since, fails those members with the reason, and the simulator's profile
keeps every membership it had. The preview's words about it: test_sync_wizard_array_cap.py.
"""

import pytest
import requests
from django.urls import reverse

from connections.models import Connection
from connections.partners.base import Recipient
from core.models import AuditEntry
from syncs.engine.array_cap import ArrayCapGuard
from syncs.engine.diff import PlannedMember
from syncs.models import Sync, SyncedMember, SyncRun, SyncRunError
from syncs.services import start_run, update_sync
from tests.api.helpers import api_client_for
from tests.factories import make_cohort, make_simulator_connection, make_sync
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db

NAMES = [f"Cohort {n:02d}" for n in range(1, 28)]
REASON = (
    "array cap: cohortsync_cohorts already holds 25 cohorts for this member; use boolean "
    "membership for this sync or raise the connection's array cap"
)


def api_body(cohort, connection, **fields):
    return {
        "name": f"{cohort.name} → Braze",
        "cohort_id": cohort.pk,
        "connection_id": connection.pk,
        "identifier_mapping": ["external_id"],
        "cadence": {"kind": "once"},
        **fields,
    }


def wizard_data(cohort, connection, **fields):
    return {
        "cohort": cohort.pk,
        "connection": connection.pk,
        "primary_identifier": "external_id",
        "cadence": "once",
        "leaving_members": "remove",
        "mass_removal_threshold_pct": "50",
        "name": f"{cohort.name} → Braze",
        **fields,
    }


def edit_data(sync, **fields):
    return {
        "primary_identifier": "external_id",
        "cadence": "once",
        "leaving_members": "remove",
        "mass_removal_threshold_pct": "50",
        "name": sync.name,
        **fields,
    }


def sync_all(cohorts, connection, **fields):
    return [
        make_sync(name=f"{cohort.name} → Braze", cohort=cohort, connection=connection, **fields)
        for cohort in cohorts
    ]


def made_before_the_rule(cohort, connection):
    """A sync saved as syncs were before the rule: no check of the array."""
    return make_sync(
        name=f"{cohort.name} → Braze", cohort=cohort, connection=connection, options={}, orm=True
    )


@pytest.fixture
def cohorts():
    return [
        make_cohort(name=name, members=["shared-1", f"solo-{n}"]) for n, name in enumerate(NAMES)
    ]


@pytest.fixture
def api(marketer):
    return api_client_for(marketer)


# The services: API, wizard and edit form


def test_the_api_refuses_the_26th_cohort_with_the_attribute_the_cap_the_count_and_the_way_out(
    api, cohorts, connection
):
    for cohort in cohorts[:25]:
        assert api.post("/syncs", api_body(cohort, connection)).status_code == 201
    audited = AuditEntry.objects.count()

    for cohort in cohorts[25:]:
        response = api.post("/syncs", api_body(cohort, connection))
        assert response.status_code == 400
        (message,) = response.json()["errors"]["options"]
        assert "at most 25 values in the array attribute cohortsync_cohorts" in message
        assert "25 cohorts write their names there already: this sync would make 26" in message
        assert 'Use boolean membership for this sync (membership mode "boolean")' in message
        assert (
            "another array attribute" in message and "raise the connection's array cap" in message
        )

    assert Sync.objects.count() == 25
    assert AuditEntry.objects.count() == audited


def test_boolean_membership_is_the_way_out(api, cohorts, connection):
    sync_all(cohorts[:25], connection)
    body = api_body(cohorts[25], connection, options={"membership_mode": "boolean"})
    assert api.post("/syncs", body).status_code == 201
    both = api_body(cohorts[26], connection, options={"membership_mode": "both"})
    assert api.post("/syncs", both).status_code == 400  # both writes the array too


def test_a_raised_cap_lets_more_cohorts_share_the_array(api, cohorts, sandbox):
    raised = make_simulator_connection(sandbox, name="Braze raised", array_cap=26)
    sync_all(cohorts[:25], raised)
    assert api.post("/syncs", api_body(cohorts[25], raised)).status_code == 201
    assert api.post("/syncs", api_body(cohorts[26], raised)).status_code == 400


def test_the_api_refuses_switching_a_boolean_sync_to_the_full_array(api, cohorts, connection):
    sync_all(cohorts[:25], connection)
    boolean = make_sync(
        name="Booleans",
        cohort=cohorts[25],
        connection=connection,
        options={"membership_mode": "boolean"},
    )
    response = api.patch(f"/syncs/{boolean.pk}", {"options": {"membership_mode": "array"}})
    assert response.status_code == 400
    assert "this sync would make 26" in response.json()["errors"]["options"][0]
    boolean.refresh_from_db()
    assert boolean.options == {"membership_mode": "boolean"}


def test_the_wizard_refuses_the_26th_and_27th_and_creates_nothing(
    marketer_client, cohorts, connection
):
    sync_all(cohorts[:25], connection)
    for cohort in cohorts[25:]:
        response = marketer_client.post(
            reverse("syncs:sync_create"), wizard_data(cohort, connection)
        )
        assert response.status_code == 200
        html = response.content.decode()
        assert "at most 25 values in the array attribute cohortsync_cohorts" in html
        assert "this sync would make 26" in html
    assert Sync.objects.count() == 25
    response = marketer_client.post(
        reverse("syncs:sync_create"),
        wizard_data(cohorts[25], connection, membership_mode="boolean"),
    )
    assert response.status_code == 302


def test_the_edit_form_refuses_a_switch_to_the_full_array(marketer_client, cohorts, connection):
    sync_all(cohorts[:25], connection)
    boolean = make_sync(
        name="Booleans",
        cohort=cohorts[25],
        connection=connection,
        options={"membership_mode": "boolean"},
    )
    response = marketer_client.post(
        reverse("syncs:sync_edit", args=[boolean.pk]), edit_data(boolean, membership_mode="array")
    )
    assert response.status_code == 200
    assert "this sync would make 26" in response.content.decode()
    boolean.refresh_from_db()
    assert boolean.options == {"membership_mode": "boolean"}


def test_a_sync_that_shared_the_array_already_can_still_be_edited(cohorts, connection):
    sync_all(cohorts[:25], connection)
    old = made_before_the_rule(cohorts[25], connection)
    changed = update_sync(sync=old, actor=None, name="Renamed", options={"membership_mode": "both"})
    assert (changed.name, changed.options) == ("Renamed", {"membership_mode": "both"})


# At run time, against the simulator


def profile_cohorts(sandbox, external_id):
    url = f"{sandbox.url}/_sandbox/braze/profiles/external_id:{external_id}"
    response = requests.get(url, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["attributes"].get("cohortsync_cohorts")


def run_all(syncs):
    runs = [start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)[0] for sync in syncs]
    run_jobs()
    for run in runs:
        run.refresh_from_db()
    return runs


@pytest.mark.usefixtures("rq_redis")
def test_27_cohorts_end_to_end_the_api_and_wizard_refuse_and_the_engine_loses_nothing(
    api, marketer_client, cohorts, connection, sandbox
):
    for cohort in cohorts[:25]:
        assert api.post("/syncs", api_body(cohort, connection)).status_code == 201
    for cohort in cohorts[25:]:
        assert api.post("/syncs", api_body(cohort, connection)).status_code == 400
        form = marketer_client.post(reverse("syncs:sync_create"), wizard_data(cohort, connection))
        assert form.status_code == 200 and "this sync would make 26" in form.content.decode()
    first = run_all(Sync.objects.order_by("pk"))
    assert {run.status for run in first} == {SyncRun.Status.SUCCEEDED}
    assert profile_cohorts(sandbox, "shared-1") == NAMES[:25]

    # Forced past the cap: syncs saved before the rule existed.
    forced = [made_before_the_rule(cohort, connection) for cohort in cohorts[25:]]
    runs = run_all(forced)

    for run, sync in zip(runs, forced, strict=True):
        assert run.status == SyncRun.Status.PARTIALLY_FAILED
        assert (run.planned_adds, run.added, run.failed, run.skipped) == (2, 1, 1, 0)
        (error,) = SyncRunError.objects.filter(run=run)
        assert (error.member, error.operation, error.reason) == (
            "external_id:shared-1",
            "add",
            REASON,
        )
        assert error.partner_status is None
        assert not SyncedMember.objects.filter(sync=sync, value="shared-1").exists()
    # No membership lost: the profile holds its 25 earlier cohorts, in their order; the
    # members with room got theirs.
    assert profile_cohorts(sandbox, "shared-1") == NAMES[:25]
    assert profile_cohorts(sandbox, "solo-25") == [NAMES[25]]
    assert profile_cohorts(sandbox, "solo-26") == [NAMES[26]]


@pytest.mark.usefixtures("rq_redis")
def test_a_lowered_cap_fails_only_the_members_whose_array_is_full(connection, sandbox):
    a, b, c = (make_cohort(name=name, members=["both", f"only-{name}"]) for name in "ABC")
    first, second, late = sync_all([a, b, c], connection)
    run_all([first, second])
    # The admin lowers the cap to what Braze says the workspace keeps.
    Connection.objects.filter(pk=connection.pk).update(config=dict(connection.config, array_cap=2))
    (run,) = run_all([late])
    assert (run.added, run.failed) == (1, 1)
    error = SyncRunError.objects.get(run=run)
    assert error.member == "external_id:both"
    assert error.reason.startswith("array cap: cohortsync_cohorts already holds 2 cohorts")
    assert profile_cohorts(sandbox, "both") == ["A", "B"]
    assert profile_cohorts(sandbox, "only-C") == ["C"]


# What the check costs


def planned(value, pk):
    return PlannedMember(pk, "external_id", "", value, "external_id", value, "")


def test_no_check_is_made_while_no_more_cohorts_share_the_array_than_its_cap(
    cohorts, connection, django_assert_num_queries
):
    syncs = sync_all(cohorts[:25], connection)
    with django_assert_num_queries(1):
        guard = ArrayCapGuard.of(
            sync=syncs[-1],
            partner=connection.partner,
            config=connection.get_config(),
            options=syncs[-1].options,
        )
    assert guard is None
    boolean = make_sync(
        name="Booleans",
        cohort=cohorts[25],
        connection=connection,
        options={"membership_mode": "boolean"},
    )
    with django_assert_num_queries(0):
        assert (
            ArrayCapGuard.of(
                sync=boolean,
                partner=connection.partner,
                config=connection.get_config(),
                options=boolean.options,
            )
            is None
        )


def test_past_the_cap_a_batch_costs_one_query_and_counts_by_the_profile_sent_to(
    cohorts, connection, django_assert_num_queries
):
    syncs = sync_all(cohorts[:25], connection)
    forced = made_before_the_rule(cohorts[25], connection)
    for sync in syncs:
        SyncedMember.objects.create(
            sync=sync,
            id_type="external_id",
            value="full",
            dest_type="external_id",
            dest_value="full",
        )
    # In 24 of them only, by a braze_id: one cohort short of full.
    for sync in syncs[:24]:
        SyncedMember.objects.create(
            sync=sync,
            id_type="external_id",
            value="roomy",
            dest_type="braze_id",
            dest_value="b-roomy",
        )
    guard = ArrayCapGuard.of(
        sync=forced,
        partner=connection.partner,
        config=connection.get_config(),
        options=forced.options,
    )
    # Full too, but this sync sent it its value already (a full resync sends it again): adding
    # a value the array holds moves it, and drops nothing.
    for sync in [*syncs, forced]:
        SyncedMember.objects.create(
            sync=sync,
            id_type="external_id",
            value="resent",
            dest_type="external_id",
            dest_value="resent",
        )
    sending = [
        (planned("full", 1), Recipient(1, "external_id", "full")),
        (planned("roomy", 2), Recipient(2, "braze_id", "b-roomy")),
        (planned("new", 3), Recipient(3, "external_id", "new")),
        (planned("resent", 4), Recipient(4, "external_id", "resent")),
    ]
    with django_assert_num_queries(1):
        refused = guard.overflowing(sending)
    assert refused == {1: REASON}
