"""Members keep the properties their source gives: an Amplitude download's property columns
(typed only where that cannot be wrong), replaced whole by the next download; the member
writer replaces a member's properties when given some and keeps them otherwise."""

import pytest

from cohorts.membership import Identity, apply_changes, replace_members
from cohorts.models import CohortMember
from cohorts.properties import property_value
from tests.cohorts.test_amplitude_pull import pull_once, run, seed
from tests.factories import make_cohort

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("FALSE", False),
        ("42", 42),
        ("-7", -7),
        ("2.5", 2.5),
        ("0", 0),
        ("01234", "01234"),  # a zip code keeps its zero
        ("1234567890123456", "1234567890123456"),  # past 15 digits a number could round
        ("1e3", "1e3"),
        ('["a", "b"]', ["a", "b"]),
        ("[not json", "[not json"),
        ("2026-12-01 10:00:00", "2026-12-01 10:00:00"),
        ("yes", "yes"),
        ("", None),
    ],
)
def test_a_fields_text_is_typed_only_where_that_cannot_be_wrong(text, value):
    assert property_value(text) == value
    assert type(property_value(text)) is type(value)


def properties(cohort):
    return dict(cohort.members.values_list("value", "properties"))


def test_a_download_gives_members_their_properties_and_the_next_replaces_them(sandbox):
    seed(sandbox, ["u1", "u2"], plan="pro", score="12", vip="true")
    pull = run(pull_once(sandbox))
    assert pull.status == "succeeded", pull.last_error
    assert properties(pull.cohort) == {
        "u1": {"plan": "pro", "score": 12, "vip": True},
        "u2": {"plan": "pro", "score": 12, "vip": True},
    }

    sandbox.state.seed_amplitude_cohort(
        "7khm89cz",
        "Power users",
        [
            {"user_id": "u1", "amplitude_id": 1, "plan": "team"},  # score and vip gone
            {"user_id": "u2", "amplitude_id": 2, "plan": "pro", "score": "12", "vip": "true"},
        ],
    )
    pull.next_run_at = None
    pull.save(update_fields=["next_run_at"])
    pull = run(pull)
    assert pull.status == "succeeded", pull.last_error
    assert properties(pull.cohort) == {
        "u1": {"plan": "team"},
        "u2": {"plan": "pro", "score": 12, "vip": True},
    }


def test_given_properties_replace_a_members_and_none_keeps_them():
    cohort = make_cohort(members=["u1", "u2"])
    assert set(properties(cohort).values()) == {None}
    apply_changes(
        cohort.pk,
        add=[
            Identity("external_id", "u1", properties={"plan": "pro", "seats": 3}),
            Identity("external_id", "u3", properties={"plan": "free"}),
        ],
    )
    apply_changes(cohort.pk, add=[Identity("external_id", "u1", properties={"plan": "team"})])
    apply_changes(cohort.pk, add=[Identity("external_id", "u3")])  # says nothing of them
    assert properties(cohort) == {"u1": {"plan": "team"}, "u2": None, "u3": {"plan": "free"}}
    counts = replace_members(cohort.pk, [[Identity("external_id", "u1", properties={})]])
    assert (counts.added, counts.removed) == (0, 2)
    assert CohortMember.objects.get(cohort=cohort).properties == {}
