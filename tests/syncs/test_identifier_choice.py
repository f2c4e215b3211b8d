"""Which identifier a run sends each member by: the first of the sync's mapping the member has.

The plan's pages choose it in SQL (diff.page_to_add); diff.recipient_for says the same rule in
Python, and the sync's preview counts with it. The two must agree for every member and mapping,
from a stored plan and from a whole-cohort one."""

import pytest

from cohorts.membership import Identity
from cohorts.models import CohortMember
from syncs.engine import diff
from syncs.models import SyncRunPlanItem
from tests.factories import make_cohort, make_run, make_sync

pytestmark = pytest.mark.django_db

MEMBERS = [
    Identity("external_id", "u1"),
    Identity("external_id", "u2", extras=(("braze_id", "b2"), ("gaid", "g2"))),
    Identity("device_id", "d3", extras=(("idfv", "v3"),)),
    Identity("user_alias", "a@example.com", alias_label="email"),
    Identity("user_alias", "a5", alias_label="crm", extras=(("braze_id", "b5"),)),
    Identity("device_id", "d6", extras=(("idfa", "f6"), ("oaid", "o6"), ("amplitude_id", "p6"))),
]
MAPPINGS = [
    ["external_id"],
    ["braze_id"],
    ["user_alias"],
    ["external_id", "braze_id"],
    ["braze_id", "external_id", "user_alias"],
    ["gaid", "idfv", "device_id"],
    ["idfa", "oaid", "amplitude_id"],
    # A name recipient_for does not know is passed over, in SQL as in Python.
    ["no_such_identifier", "user_alias", "device_id"],
]


@pytest.fixture
def cohort():
    cohort = make_cohort(name="Mixed", members=MEMBERS)
    # An extra identifier present but empty counts as absent.
    CohortMember.objects.filter(cohort=cohort, value="u1").update(braze_id="")
    return cohort


@pytest.mark.parametrize("mapping", MAPPINGS, ids=lambda mapping: "+".join(mapping))
@pytest.mark.parametrize("whole_cohort", [True, False], ids=["whole cohort", "stored plan"])
def test_the_pages_choose_the_identifier_recipient_for_chooses(cohort, mapping, whole_cohort):
    sync = make_sync(cohort=cohort)
    run = make_run(sync)
    members = list(CohortMember.objects.filter(cohort=cohort).order_by("id"))
    if not whole_cohort:
        SyncRunPlanItem.objects.bulk_create(
            SyncRunPlanItem(run=run, op=SyncRunPlanItem.Op.ADD, ref_id=member.pk)
            for member in members
        )
    page = diff.page_to_add(
        sync,
        mapping=mapping,
        run_id=run.pk,
        after_id=0,
        limit=100,
        until=members[-1].pk if whole_cohort else None,
    )

    assert page is not None
    expected = {}
    for member in members:
        recipient = diff.recipient_for(member, mapping)
        expected[member.pk] = (
            (recipient.identifier_type, recipient.identifier, recipient.alias_label)
            if recipient
            else (None, "", "")
        )
    assert {m.pk: (m.dest_type, m.dest_value, m.dest_label) for m in page.rows} == expected
    assert [m.pk for m in page.rows] == [member.pk for member in members]
    # Each mapping reaches someone: a choice is compared, not only "none".
    assert any(dest[0] is not None for dest in expected.values())
