"""What the sync form's preview says about a connection's array cap (Braze keeps 25 values by
default): nothing up to the cap; past it, that the sync is refused (or, for a sync that shared
the array already, that its runs fail the members whose array is full), with the members it
hits. And the per-sync membership mode reaching Braze itself.

The refusal itself (services, API, wizard, engine): tests/syncs/test_array_cap_rule.py."""

import pytest
import requests
from django.urls import reverse

from cohorts.membership import Identity, apply_changes
from syncs.array_cap import array_cap_warning
from syncs.models import Sync, SyncRun
from tests.base import make_connection
from tests.factories import make_cohort, make_sync
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db


def ext(value):
    return Identity("external_id", value)


def make_cohorts(count, *, members=()):
    """`count` cohorts; every member in `members` is in all of them."""
    return [make_cohort(name=f"Cohort {n:02d}", members=members) for n in range(count)]


def sync_each(cohorts, connection, *, orm=False, **options):
    """A sync of each cohort; `orm`: saved as syncs made before the array cap rule were."""
    for cohort in cohorts:
        make_sync(
            name=f"{cohort.name} → Braze",
            cohort=cohort,
            connection=connection,
            options=options or ({} if orm else None),
            orm=orm,
        )


@pytest.fixture
def braze():
    return make_connection(name="Braze prod")


@pytest.fixture
def new_cohort():
    return make_cohort(name="New cohort", members=["many-1", "many-2", "few-1"])


def test_25_cohorts_sharing_the_attribute_raise_no_warning(braze, new_cohort):
    sync_each(make_cohorts(24, members=["many-1"]), braze)
    assert array_cap_warning(connection=braze, cohort=new_cohort, options={}) is None


def test_the_26th_cohort_is_refused_with_the_members_past_the_cap(
    braze, new_cohort, django_assert_max_num_queries
):
    cohorts = make_cohorts(25, members=["many-1", "many-2"])
    apply_changes(cohorts[0].pk, add=[ext("few-1")])  # few-1 is in 2 cohorts only
    sync_each(cohorts, braze)
    with django_assert_max_num_queries(2):
        warning = array_cap_warning(connection=braze, cohort=new_cohort, options={})
    assert warning is not None
    assert (warning.attribute, warning.cohorts, warning.members_over, warning.refused) == (
        "cohortsync_cohorts",
        26,
        2,
        True,
    )


def test_the_connections_cap_is_the_one_counted(new_cohort):
    braze = make_connection(name="Braze raised", array_cap=100)
    sync_each(make_cohorts(30), braze)
    assert array_cap_warning(connection=braze, cohort=new_cohort, options={}) is None
    lowered = make_connection(name="Braze lowered", array_cap=3)
    sync_each(make_cohorts(3), lowered)
    warning = array_cap_warning(connection=lowered, cohort=new_cohort, options={})
    assert (warning.cap, warning.cohorts) == (3, 4)


def test_a_second_sync_of_a_cohort_adds_no_value_to_the_array(braze):
    cohorts = make_cohorts(25)
    sync_each(cohorts, braze)
    assert array_cap_warning(connection=braze, cohort=cohorts[0], options={}) is None


def test_the_warning_counts_possible_overflow_even_when_no_member_is_past_it_yet(braze, new_cohort):
    sync_each(make_cohorts(25), braze)
    warning = array_cap_warning(connection=braze, cohort=new_cohort, options={})
    assert (warning.cohorts, warning.members_over) == (26, 0)


def test_boolean_writes_share_no_array(braze, new_cohort):
    sync_each(make_cohorts(20), braze)
    sync_each(make_cohorts(10)[5:], braze, membership_mode="boolean")  # names repeat
    assert array_cap_warning(connection=braze, cohort=new_cohort, options={}) is None
    sync_each(make_cohorts(25)[20:], braze, membership_mode="both")  # both writes the array
    assert array_cap_warning(connection=braze, cohort=new_cohort, options={}).cohorts == 26
    # This sync in boolean mode adds nothing to the array: no warning for it.
    assert (
        array_cap_warning(
            connection=braze, cohort=new_cohort, options={"membership_mode": "boolean"}
        )
        is None
    )


def test_a_boolean_connection_warns_only_for_syncs_that_override_it_to_array(new_cohort):
    connection = make_connection(name="Braze booleans", membership_mode="boolean")
    sync_each(make_cohorts(25), connection)
    assert array_cap_warning(connection=connection, cohort=new_cohort, options={}) is None
    assert (
        array_cap_warning(
            connection=connection, cohort=new_cohort, options={"membership_mode": "array"}
        )
        is None  # the 25 others write booleans: this would be the array's only value
    )
    sync_each(make_cohorts(25), connection, membership_mode="array")
    warning = array_cap_warning(
        connection=connection, cohort=new_cohort, options={"membership_mode": "array"}
    )
    assert warning.cohorts == 26


def test_an_edited_sync_is_not_counted_twice_and_one_that_shared_the_array_is_not_refused(braze):
    cohorts = make_cohorts(26)
    sync_each(cohorts[:25], braze)
    sync_each(cohorts[25:], braze, orm=True)  # made before the rule
    last = Sync.objects.get(cohort=cohorts[-1])
    warning = array_cap_warning(
        connection=braze,
        cohort=cohorts[-1],
        options={},
        exclude_sync_id=last.pk,
        current=last.options,
    )
    assert (warning.cohorts, warning.refused) == (26, False)
    assert (
        array_cap_warning(
            connection=braze,
            cohort=cohorts[-1],
            options={"membership_mode": "boolean"},
            exclude_sync_id=last.pk,
        )
        is None
    )


def test_appsflyer_has_no_array_to_fill(new_cohort):
    assert (
        array_cap_warning(connection=make_connection("appsflyer"), cohort=new_cohort, options={})
        is None
    )


def preview_page(client, cohort, connection, **changes):
    data = {
        "step": "preview",
        "cohort": cohort.pk,
        "connection": connection.pk,
        "primary_identifier": "external_id",
        "cadence": "once",
        "leaving_members": "remove",
        "mass_removal_threshold_pct": "50",
        **changes,
    }
    return client.get(reverse("syncs:sync_create"), data).content.decode()


def test_the_preview_says_the_sync_is_refused_and_what_to_do(marketer_client, braze, new_cohort):
    sync_each(make_cohorts(25, members=["many-1"]), braze)
    html = preview_page(marketer_client, new_cohort, braze)
    assert 'id="array-cap-warning"' in html
    assert "This sync cannot be saved as it is." in html
    assert (
        "Braze prod keeps at most 25 values in the array attribute <code>cohortsync_cohorts</code>"
        " (the connection's array cap), and with this sync 26 cohorts would write" in html
    )
    assert "Today 1 member is in more than 25 of these cohorts." in html
    assert "A boolean attribute per cohort" in html and "raise the connection's array cap" in html
    assert 'id="array-cap-warning"' not in preview_page(
        marketer_client, new_cohort, braze, membership_mode="boolean"
    )


def test_editing_a_sync_made_before_the_rule_says_its_runs_fail_the_full_members(
    marketer_client, braze
):
    cohorts = make_cohorts(26, members=["many-1"])
    sync_each(cohorts[:25], braze)
    sync_each(cohorts[25:], braze, orm=True)
    sync = Sync.objects.get(cohort=cohorts[-1])
    html = marketer_client.get(
        reverse("syncs:sync_edit", args=[sync.pk]),
        {
            "step": "preview",
            "primary_identifier": "external_id",
            "cadence": "once",
            "leaving_members": "remove",
            "mass_removal_threshold_pct": "50",
        },
    ).content.decode()
    assert "This sync cannot be saved" not in html
    assert "26 cohorts write their names into <code>cohortsync_cohorts</code>" in html
    assert "Runs of this sync fail the members whose array is full already" in html
    assert "Today 1 member is in more than 25 of these cohorts." in html


def test_the_preview_has_no_warning_below_the_cap(marketer_client, braze, new_cohort):
    sync_each(make_cohorts(3), braze)
    assert 'id="array-cap-warning"' not in preview_page(marketer_client, new_cohort, braze)


# The override reaches Braze


def profile(sandbox, external_id):
    url = f"{sandbox.url}/_sandbox/braze/profiles/external_id:{external_id}"
    response = requests.get(url, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["attributes"]


@pytest.mark.usefixtures("rq_redis")
@pytest.mark.parametrize(
    ("mode", "array", "boolean"),
    [("", ["Churn risk"], None), ("boolean", None, True), ("both", ["Churn risk"], True)],
)
def test_the_membership_mode_chosen_in_the_form_is_what_braze_receives(
    marketer_client, connection, sandbox, mode, array, boolean
):
    cohort = make_cohort(members=["u1", "u2"])

    data = {
        "cohort": cohort.pk,
        "connection": connection.pk,
        "primary_identifier": "external_id",
        "membership_mode": mode,
        "cadence": "once",
        "leaving_members": "remove",
        "mass_removal_threshold_pct": "50",
        "name": "Churn → Braze",
    }
    assert marketer_client.post(reverse("syncs:sync_create"), data).status_code == 302
    sync = Sync.objects.get()
    assert sync.options == ({"membership_mode": mode} if mode else {})
    marketer_client.post(reverse("syncs:sync_run_now", args=[sync.pk]))
    run_jobs()
    assert SyncRun.objects.get().added == 2
    for value in ("u1", "u2"):
        attributes = profile(sandbox, value)
        assert attributes.get("cohortsync_cohorts") == array
        assert attributes.get("In Churn risk") == boolean
