"""What a trait sync takes, the same for the wizard, the edit form and the API: each refusal
names the field, says why, and writes nothing."""

import pytest
from django.core.exceptions import ValidationError

from connections.partners.base import Recipient
from connections.partners.braze.payload import build_trait_payload
from syncs.engine.traits import Trait, attribute_value, update_for
from syncs.models import Sync
from syncs.services import create_sync, update_sync
from tests.base import make_connection
from tests.factories import make_cohort

pytestmark = pytest.mark.django_db


def trait_sync(connection=None, **fields):
    return create_sync(
        name="Traits",
        cohort=make_cohort(members=["u1"]),
        connection=connection or make_connection(),
        identifier_mapping=fields.pop("identifier_mapping", ["external_id"]),
        cadence={"kind": "once"},
        kind=fields.pop("kind", Sync.Kind.TRAITS),
        traits=fields.pop("traits", [{"property": "plan"}]),
        actor=None,
        **fields,
    )


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"traits": []}, "traits", "at least one property"),
        ({"traits": [{"property": ""}]}, "traits", "1 to 255 characters"),
        ({"traits": [{"property": "plan", "attribute": "external_id"}]}, "traits", "identifies"),
        ({"traits": [{"property": "plan", "attribute": "$x"}]}, "traits", '"$"'),
        ({"traits": [{"property": "p", "attribute": "a" * 256}]}, "traits", "255 characters"),
        (
            {"traits": [{"property": "a", "attribute": "x"}, {"property": "b", "attribute": "x"}]},
            "traits",
            "same attribute: x",
        ),
        ({"identifier_mapping": ["braze_id"]}, "identifier_mapping", "External ID only"),
        ({"verify": True}, "verify", "no membership to verify"),
        ({"kind": "colours"}, "kind", "Choose one of"),
    ],
)
def test_a_bad_trait_sync_is_refused_with_the_field_and_why_and_nothing_saved(fields, field, words):
    with pytest.raises(ValidationError) as refused:
        trait_sync(**fields)
    messages = refused.value.message_dict[field]
    assert any(words.lower() in message.lower() for message in messages), messages
    assert not Sync.objects.exists()


def test_a_destination_without_traits_is_refused():
    with pytest.raises(ValidationError) as refused:
        trait_sync(make_connection("appsflyer"), identifier_mapping=[])
    assert "does not take member traits" in refused.value.message_dict["connection"][0]
    assert not Sync.objects.exists()


def test_a_membership_sync_takes_no_traits():
    with pytest.raises(ValidationError) as refused:
        create_sync(
            name="Membership",
            cohort=make_cohort(),
            connection=make_connection(),
            identifier_mapping=["external_id"],
            cadence={"kind": "once"},
            traits=[{"property": "plan"}],
            actor=None,
        )
    assert "Only a trait sync" in refused.value.message_dict["traits"][0]


def test_a_trait_sync_is_saved_with_attributes_named_after_properties_unless_renamed():
    sync = trait_sync(traits=[{"property": "plan"}, {"property": " score ", "attribute": "Score"}])
    assert sync.traits == [
        {"property": "plan", "attribute": "plan"},
        {"property": "score", "attribute": "Score"},
    ]
    assert (sync.identifier_mapping, sync.leaving_members) == (["external_id"], "keep")

    changed = update_sync(sync=sync, actor=None, traits=[{"property": "plan", "attribute": "Plan"}])
    assert changed.traits == [{"property": "plan", "attribute": "Plan"}]
    for bad in (
        {"traits": [{"property": "plan", "attribute": "$Plan"}]},
        {"traits": [{"property": "plan"}], "leaving_members": "remove"},
        {"identifier_mapping": ["user_alias"]},
        {"traits_send_nulls": "yes"},
    ):
        with pytest.raises(ValidationError):
            update_sync(sync=changed, actor=None, **bad)
    changed.refresh_from_db()
    assert changed.traits == [{"property": "plan", "attribute": "Plan"}]
    assert (changed.leaving_members, changed.traits_send_nulls) == ("keep", False)


def test_values_keep_their_type_and_a_time_is_sent_as_iso_8601_utc():
    assert attribute_value("2026-12-01 10:00:00") == "2026-12-01T10:00:00Z"
    assert attribute_value("2026-12-01T11:00:00+01:00") == "2026-12-01T10:00:00Z"
    assert attribute_value("2026-12-01") == "2026-12-01"
    assert attribute_value("2026-13-01 10:00:00") == "2026-13-01 10:00:00"  # not a time
    for value in (3, 2.5, True, "pro", ["a"], {"k": 1}):
        assert attribute_value(value) == value


def test_an_update_holds_only_the_changed_attributes_and_the_ledger_after_it():
    traits = [Trait("plan", "plan"), Trait("score", "lead_score"), Trait("vip", "vip")]
    sent = {"plan": "pro", "lead_score": 10, "vip": True}
    properties = {"plan": "pro", "score": 10.5}  # score changed, vip gone
    kept = update_for(properties, sent, traits, send_nulls=False)
    assert kept is not None
    assert kept.attributes == {"lead_score": 10.5}
    assert kept.ledger == {"plan": "pro", "lead_score": 10.5, "vip": True}
    nulled = update_for(properties, sent, traits, send_nulls=True)
    assert nulled is not None
    assert nulled.attributes == {"lead_score": 10.5, "vip": None}
    assert nulled.ledger == {"plan": "pro", "lead_score": 10.5}
    assert (
        update_for({"plan": "pro", "score": 10, "vip": True}, sent, traits, send_nulls=True) is None
    )


def test_a_trait_batch_is_one_object_per_member_that_creates_unknown_profiles():
    payload, refs = build_trait_payload(
        [
            Recipient(7, "external_id", "u1", attributes={"plan": "pro", "vip": None}),
            Recipient(9, "external_id", "u2", attributes={"tags": ["a"]}),
        ],
        default_alias_label="",
    )
    assert payload == {
        "attributes": [
            {"external_id": "u1", "plan": "pro", "vip": None},
            {"external_id": "u2", "tags": ["a"]},
        ]
    }
    assert refs == [7, 9]


def test_a_trait_sync_never_counts_against_the_connections_array_cap():
    braze = make_connection(name="Braze prod", membership_mode="array", array_cap=1)
    create_sync(
        name="Membership",
        cohort=make_cohort(name="A"),
        connection=braze,
        identifier_mapping=["external_id"],
        cadence={"kind": "once"},
        actor=None,
    )
    # A second cohort in the array would pass the cap of 1; traits write no array.
    trait_sync(braze)
    with pytest.raises(ValidationError) as refused:
        create_sync(
            name="Another membership",
            cohort=make_cohort(name="B"),
            connection=braze,
            identifier_mapping=["external_id"],
            cadence={"kind": "once"},
            actor=None,
        )
    assert "options" in refused.value.message_dict
    assert Sync.objects.count() == 2
