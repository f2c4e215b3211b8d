"""Braze bills custom-attribute updates as data points (docs/partners/braze.md §13): each object
written costs one per custom attribute it updates (array 1, boolean 1, both 2), adds and removes
alike. The new sync's preview, the edit preview, the full-resync confirmation and the run page
say what a run will use or used; a partner that bills none (AppsFlyer) shows nothing."""

import re

import pytest
from django.urls import reverse

from cohorts.membership import Identity, apply_changes
from connections.partners import PARTNERS
from syncs.models import SyncedMember, SyncRun
from syncs.services import start_run
from tests.base import make_connection
from tests.factories import make_cohort, make_run, make_simulator_connection, make_sync
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db
braze = PARTNERS["braze"]
TIMES = "\N{MULTIPLICATION SIGN}"


def data_points_text(html):
    """The text of the page's data points figure, tags and spacing collapsed; None if absent."""
    found = re.search(r'class="data-points">(.*?)</(dd|p)>', html, re.S)
    if found is None:
        return None
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


@pytest.mark.parametrize(
    ("connection_mode", "override", "per_member"),
    [
        ("array", "", 1),
        ("boolean", "", 1),
        ("both", "", 2),
        ("array", "both", 2),
        ("both", "boolean", 1),
    ],
)
def test_braze_bills_one_data_point_per_attribute_written(connection_mode, override, per_member):
    config = braze.parse_config({"instance": "US-01", "membership_mode": connection_mode})
    options = {"membership_mode": override} if override else {}
    assert braze.data_points_per_object(config, options) == per_member


def test_appsflyer_bills_no_data_points():
    appsflyer = PARTNERS["appsflyer"]
    config = appsflyer.parse_config(appsflyer.simulator_config("http://127.0.0.1:9"))
    assert appsflyer.data_points_per_object(config, {}) is None


# The new sync's preview and the edit preview


def preview_html(client, cohort, connection, **changes):
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
    response = client.get(reverse("syncs:sync_create"), data)
    assert response.status_code == 200
    return response.content.decode()


def test_the_new_sync_preview_shows_the_first_runs_data_points(marketer_client):
    members = [f"u{n}" for n in range(1200)] + [Identity("device_id", "d1")]
    cohort = make_cohort(members=members)
    connection = make_connection(name="Braze prod")

    text = data_points_text(preview_html(marketer_client, cohort, connection))
    assert text.startswith(f"≈ 1,200 1,200 members written {TIMES} 1 custom attribute each")

    both = data_points_text(
        preview_html(marketer_client, cohort, connection, membership_mode="both")
    )
    assert both.startswith(f"≈ 2,400 1,200 members written {TIMES} 2 custom attributes each")


def test_a_partner_that_bills_none_shows_no_data_points(marketer_client):
    cohort = make_cohort(members=[Identity("device_id", "d1", extras=(("gaid", "g1"),))])
    html = preview_html(
        marketer_client, cohort, make_connection("appsflyer"), primary_identifier="gaid"
    )
    assert "Members to add" in html
    assert data_points_text(html) is None


def test_the_edit_preview_counts_adds_and_removes_with_the_new_mode(marketer_client):
    cohort = make_cohort(members=["u1", "u2", "u3"])
    sync = make_sync(cohort=cohort, connection=make_connection(name="Braze prod"))
    SyncedMember.objects.bulk_create(
        SyncedMember(
            sync=sync, id_type="external_id", value=v, dest_type="external_id", dest_value=v
        )
        for v in ("u1", "gone-1", "gone-2")
    )
    data = {
        "step": "preview",
        "primary_identifier": "external_id",
        "membership_mode": "both",
        "cadence": "once",
        "leaving_members": "remove",
        "mass_removal_threshold_pct": "100",
    }
    html = marketer_client.get(reverse("syncs:sync_edit", args=[sync.pk]), data).content.decode()
    # u2 and u3 added, gone-1 and gone-2 removed: 4 members, 2 attributes each.
    assert data_points_text(html).startswith(
        f"≈ 8 4 members written {TIMES} 2 custom attributes each"
    )


# The full resync's confirmation


def test_the_resync_confirmation_says_what_resending_everyone_costs(marketer_client):
    members = ["u1", "u2", "u3", "u4", Identity("device_id", "d1")]
    cohort = make_cohort(members=members)
    sync = make_sync(cohort=cohort, connection=make_connection(name="Braze prod"))
    SyncedMember.objects.create(
        sync=sync, id_type="external_id", value="left", dest_type="external_id", dest_value="left"
    )
    html = marketer_client.get(reverse("syncs:sync_resync", args=[sync.pk])).content.decode()
    # Four members with an external id sent again and one who left removed; the device id
    # cannot be sent to Braze.
    assert data_points_text(html) == (
        "It writes ≈ 5 data points to Braze prod: 5 members with a usable identifier sent or "
        f"removed {TIMES} 1 custom attribute each. Braze bills these if the workspace is billed by "
        "data points."
    )


def test_the_resync_confirmation_of_a_partner_that_bills_none_says_nothing(marketer_client):
    cohort = make_cohort(members=[Identity("device_id", "d1", extras=(("gaid", "g1"),))])
    sync = make_sync(cohort=cohort, connection=make_connection("appsflyer"), mapping=["gaid"])
    html = marketer_client.get(reverse("syncs:sync_resync", args=[sync.pk])).content.decode()
    assert "Resend every member" in html and data_points_text(html) is None


# The run page: counted on what the partner accepted


def run_page(client, run):
    response = client.get(reverse("syncs:run_detail", args=[run.sync_id, run.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.usefixtures("rq_redis")
def test_a_run_records_its_rate_and_its_page_counts_what_braze_accepted(viewer_client, sandbox):
    connection = make_simulator_connection(sandbox, membership_mode="both")
    cohort = make_cohort(members=["u1", "u2", "u3", Identity("device_id", "d1")])
    sync = make_sync(cohort=cohort, connection=connection)
    run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    run.refresh_from_db()

    assert (run.added, run.skipped, run.data_points_per_member, run.data_points) == (3, 1, 2, 6)
    assert data_points_text(run_page(viewer_client, run)) == (
        f"6 the 3 members the destination accepted {TIMES} 2 custom attributes each"
    )

    apply_changes(cohort.pk, remove=[Identity("external_id", "u1")])
    second, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    second.refresh_from_db()
    assert (second.removed, second.data_points) == (1, 2)


def test_a_run_whose_adds_may_be_skipped_says_at_most(viewer_client):
    sync = make_sync()
    run = make_run(sync, added=10, removed=2, adds_applied=False, data_points_per_member=1)
    text = data_points_text(run_page(viewer_client, run))
    assert text.startswith(f"at most 12 the 12 members the destination accepted {TIMES} 1 custom")
    assert "update existing only" in text


def test_a_run_of_a_partner_that_bills_none_or_from_before_shows_none(viewer_client):
    sync = make_sync()
    run = make_run(sync, added=10, data_points_per_member=None)
    assert data_points_text(run_page(viewer_client, run)) is None
