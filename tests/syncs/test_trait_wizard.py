"""Creating and editing a trait sync in the sync form: the destination step offers it, the
properties step lists what the cohort's members carry (how many have each, sample values),
the preview counts the members the next run updates and the attributes (Braze data points)
it writes, and saving goes through the same rules as the API."""

import re

import pytest
from django.urls import reverse

from cohorts.membership import Identity, apply_changes
from syncs.models import Sync, SyncedTraits
from tests.base import make_connection
from tests.factories import make_cohort

pytestmark = pytest.mark.django_db

CREATE = reverse("syncs:sync_create")


@pytest.fixture
def cohort():
    cohort = make_cohort(name="Power users")
    apply_changes(
        cohort.pk,
        add=[
            Identity("external_id", "u1", properties={"plan": "pro", "score": 10, "vip": True}),
            Identity("external_id", "u2", properties={"plan": "free", "score": 2.5}),
            Identity("external_id", "u3", properties={"plan": "pro"}),
            Identity("external_id", "u4"),
            Identity("device_id", "d1", properties={"plan": "team"}),
        ],
    )
    return cohort


def answers(cohort, connection, **changes):
    return {
        "cohort": cohort.pk,
        "connection": connection.pk,
        "kind": "traits",
        "traits": "plan\nscore -> lead_score",
        "cadence": "once",
        **changes,
    }


def text_of(html, css_class):
    found = re.search(rf'class="{css_class}">([^<]*)', html)
    assert found is not None, css_class
    return " ".join(found.group(1).split())


def test_the_properties_step_lists_what_the_members_carry(marketer_client, cohort):
    braze = make_connection(name="Braze prod")
    response = marketer_client.get(CREATE, {**answers(cohort, braze), "step": "traits"})
    assert response.status_code == 200
    html = response.content.decode()
    rows = dict(re.findall(r'data-property="(\w+)">.*?class="num members">([\d,]+)<', html, re.S))
    assert rows == {"plan": "4", "score": "2", "vip": "1"}
    samples = {
        name: set(re.findall(r"<code>([^<]*)</code>", cell))
        for name, cell in re.findall(
            r'data-property="(\w+)">.*?class="samples">(.*?)</td>', html, re.S
        )
    }
    # Distinct values, as they would be sent (a boolean as JSON writes it).
    assert samples == {"plan": {"pro", "free", "team"}, "score": {"10", "2.5"}, "vip": {"true"}}


def test_a_destination_without_traits_is_refused_on_its_step(marketer_client, cohort):
    appsflyer = make_connection("appsflyer", name="AF android")
    response = marketer_client.get(CREATE, {**answers(cohort, appsflyer), "step": "traits"})
    assert 'data-step="destination"' in response.content.decode()
    assert "does not take member traits" in response.content.decode()


def test_the_preview_counts_the_updates_and_data_points_then_the_sync_is_saved(
    marketer_client, cohort
):
    braze = make_connection(name="Braze prod")
    response = marketer_client.get(CREATE, {**answers(cohort, braze), "step": "preview"})
    html = response.content.decode()
    assert 'data-step="preview"' in html, html
    # u1..u3 have plan or score; u4 has neither; d1 has no external ID.
    assert text_of(html, "updates") == "3"
    assert text_of(html, "skipped") == "1"
    assert text_of(html, "attributes") == "5"  # plan for 3 members, lead_score for 2
    assert text_of(html, "data-points") == "5"

    response = marketer_client.post(CREATE, {**answers(cohort, braze), "name": "Power traits"})
    assert response.status_code == 302
    sync = Sync.objects.get()
    assert (sync.kind, sync.identifier_mapping, sync.leaving_members) == (
        "traits",
        ["external_id"],
        "keep",
    )
    assert sync.traits == [
        {"property": "plan", "attribute": "plan"},
        {"property": "score", "attribute": "lead_score"},
    ]


def test_a_bad_attribute_name_sends_the_marketer_back_with_why(marketer_client, cohort):
    braze = make_connection(name="Braze prod")
    data = {**answers(cohort, braze, traits="plan -> $plan"), "name": "Bad"}
    response = marketer_client.post(CREATE, data)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-step="traits"' in html
    assert "reserves names starting with" in html
    assert not Sync.objects.exists()


def test_editing_previews_only_what_changed_since_the_ledger(marketer_client, cohort):
    braze = make_connection(name="Braze prod")
    marketer_client.post(CREATE, {**answers(cohort, braze), "name": "Power traits"})
    sync = Sync.objects.get()
    # As if a run had sent u1 and u2 their values already.
    for value, values in (("u1", {"plan": "pro", "lead_score": 10}), ("u2", {"plan": "old"})):
        SyncedTraits.objects.create(
            sync=sync,
            id_type="external_id",
            value=value,
            dest_type="external_id",
            dest_value=value,
            values=values,
            updated_at=sync.created_at,
        )
    edit = reverse("syncs:sync_edit", args=[sync.pk])
    page = marketer_client.get(edit).content.decode()
    assert "score -&gt; lead_score" in page  # the edit starts from the sync's own traits
    data = {"traits": "plan\nscore -> lead_score", "cadence": "once", "name": "Power traits"}
    html = marketer_client.get(edit, {**data, "step": "preview"}).content.decode()
    # u2: plan and lead_score differ; u3: plan never sent; u1 is up to date.
    assert text_of(html, "updates") == "2"
    assert text_of(html, "attributes") == "3"

    response = marketer_client.post(edit, {**data, "traits": "plan -> Plan"})
    assert response.status_code == 302
    sync.refresh_from_db()
    assert sync.traits == [{"property": "plan", "attribute": "Plan"}]


def test_next_on_the_destination_step_leads_a_trait_sync_to_its_properties(marketer_client, cohort):
    braze = make_connection(name="Braze prod")
    # The button says "identifier" (the kind was not chosen when the step was drawn).
    data = {"cohort": cohort.pk, "connection": braze.pk, "kind": "traits", "step": "identifier"}
    html = marketer_client.get(CREATE, data).content.decode()
    assert 'data-step="traits"' in html
    data["kind"] = "membership"
    data["step"] = "traits"
    assert 'data-step="identifier"' in marketer_client.get(CREATE, data).content.decode()
