"""Pages name things in words (#15): a connection's settings as their form labels them with Yes,
No and choice labels rather than Python values, identifiers as their destination knows them
(from the Partner's declarations), and every identifier a member can carry, IDFA included."""

import re

import pytest
from django.urls import reverse

from cohorts.membership import Identity
from cohorts.models import MEMBER_IDENTIFIERS
from connections.partners import PARTNERS
from tests.factories import make_cohort, make_connection

pytestmark = pytest.mark.django_db


def facts(client, connection):
    html = client.get(reverse("connections:detail", args=[connection.pk])).content.decode()
    return dict(re.findall(r"<dt>([^<]+)</dt><dd>(?:<code>)?([^<]*)", html))


def test_a_braze_connection_reads_in_words(viewer_client):
    braze = make_connection(name="Braze prod", update_existing_only=False)
    rows = facts(viewer_client, braze)
    assert rows["Update existing profiles only"] == "No"
    assert rows["Membership written as"] == "An array attribute listing the cohorts"
    assert rows["Default identifier"] == "External ID"
    assert rows["Users per request"] == "75"
    assert rows["Rate limit"] == "3,000 requests per 3 s"
    assert not {"False", "True"} & set(rows.values())
    assert "Rate limit requests" not in rows


def test_an_appsflyer_connection_reads_in_words(viewer_client):
    android = make_connection("appsflyer", name="AF", endpoint="https://hq1.appsflyer.com")
    rows = facts(viewer_client, android)
    assert rows["Platform"] == "Android"
    assert rows["App ID"] == "com.example.app"
    assert rows["Devices per request"] == "10,000"


@pytest.fixture
def cohort():
    return make_cohort(members=[Identity("external_id", "u1", extras=(("idfa", "A-1"),))])


def identifier_step(client, cohort, connection):
    query = {"step": "identifier", "cohort": cohort.pk, "connection": connection.pk}
    return client.get(reverse("syncs:sync_create"), query).context["identifier_options"]


def test_each_destination_names_the_identifiers_as_it_knows_them(marketer_client, cohort):
    braze = identifier_step(marketer_client, cohort, make_connection(name="Braze"))
    assert {o.name: o.label for o in braze}["external_id"] == "External ID"
    appsflyer = make_connection("appsflyer", name="AF", endpoint="https://hq1.appsflyer.com")
    labels = {o.name: o.label for o in identifier_step(marketer_client, cohort, appsflyer)}
    assert labels["external_id"] == "External ID, sent as AppsFlyer's customer user ID (cuid)"


def test_every_identifier_a_member_can_carry_is_listed_idfa_included(marketer_client, cohort):
    options = identifier_step(marketer_client, cohort, make_connection(name="Braze"))
    assert [option.name for option in options] == list(MEMBER_IDENTIFIERS)
    idfa = next(option for option in options if option.name == "idfa")
    assert idfa.label == "IDFA (iOS advertising ID)"
    assert idfa.members == 1
    assert idfa.unavailable  # Braze does not take it: shown, disabled, with the reason


@pytest.mark.parametrize("kind", sorted(PARTNERS))
def test_a_partner_renames_only_identifiers_it_takes(kind):
    partner = PARTNERS[kind]
    assert set(partner.identifier_names) <= set(partner.identifiers)
