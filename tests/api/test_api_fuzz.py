"""Properties of the sync endpoints: no JSON body gets a 500, every answer is JSON with a
message, and a refused request changes nothing."""

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from connections.partners.braze.config import MEMBERSHIP_MODES
from syncs.models import Sync

pytestmark = pytest.mark.django_db
MODES = list(MEMBERSHIP_MODES)

examples = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Every character, surrogates and NUL included, and every number, huge and non-finite included.
any_text = st.text(st.characters(exclude_categories=()), max_size=8)
numbers = st.integers() | st.integers(min_value=2**63 - 2, max_value=2**80) | st.floats()
json_values = st.recursive(
    st.none() | st.booleans() | numbers | any_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3)
    ),
    max_leaves=12,
)


def often(usual, *others):
    """`usual` nine times in ten, else something odd: many examples pass the schema, so the
    services' own checks (and the database) see odd values too."""
    unusual = st.one_of(*others, json_values)
    return st.sampled_from(range(10)).flatmap(lambda n: usual if n else unusual)


cadences = st.one_of(
    st.just({"kind": "once"}),
    st.fixed_dictionaries({"kind": st.just("hourly"), "minute": often(st.integers(0, 59))}),
    st.fixed_dictionaries(
        {
            "kind": st.just("daily"),
            "time_of_day": often(st.sampled_from(["09:00", "23:59"]), st.just("24:00")),
            "timezone": often(st.sampled_from(["UTC", "Europe/Paris"]), st.just("Mars/Olympus")),
        }
    ),
    st.dictionaries(any_text, json_values, max_size=3),
)
fields = {
    "name": often(st.just("Churn → Braze") | any_text.filter(str.strip), st.just("x" * 256)),
    "identifier_mapping": often(
        st.lists(st.sampled_from(["external_id", "braze_id", "user_alias"]), min_size=1),
        st.lists(st.sampled_from(["gaid", "external_id"]) | any_text, max_size=3),
    ),
    "cadence": often(cadences),
    "leaving_members": often(st.sampled_from(["remove", "keep"]), st.just("forget")),
    "mass_removal_threshold_pct": often(st.integers(1, 100), st.integers(-5, 120)),
    "options": often(
        st.none() | st.fixed_dictionaries({"membership_mode": st.sampled_from(MODES)}),
        st.dictionaries(st.just("membership_mode") | any_text, json_values, max_size=2),
    ),
}
ids = st.sampled_from(["COHORT", "CONNECTION"]) | st.integers() | json_values
creations = st.fixed_dictionaries(
    {
        **fields,
        "cohort_id": often(st.just("COHORT"), ids),
        "connection_id": often(st.just("CONNECTION"), ids),
    }
)
with_unknown_field = st.builds(
    lambda body, extra: {**body, "unknown": extra}, creations, json_values
)
updates = st.fixed_dictionaries({}, optional={**fields, "cohort_id": json_values})


def encode(body, cohort, connection):
    """JSON as a client might send it: NaN and Infinity included; or raw bytes."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, dict):
        real = {"COHORT": cohort.pk, "CONNECTION": connection.pk}
        body = {
            key: real.get(value, value) if isinstance(value, str) else value
            for key, value in body.items()
        }
    return json.dumps(body)


def check_answer(response):
    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["message"]


@examples
@given(body=often(creations, with_unknown_field, st.binary(max_size=40)))
def test_no_creation_body_gets_a_500_and_a_refused_one_creates_nothing(
    marketer_api, cohort, connection, body
):
    before = Sync.objects.count()
    response = marketer_api.post("/syncs", encode(body, cohort, connection))
    event(f"{response.status_code}")
    if response.status_code == 201:
        assert Sync.objects.count() == before + 1
        return
    check_answer(response)
    assert Sync.objects.count() == before


@examples
@given(body=often(updates, st.binary(max_size=40)))
def test_no_update_body_gets_a_500_and_a_refused_one_changes_nothing(
    marketer_api, cohort, connection, sync, body
):
    before = Sync.objects.filter(pk=sync.pk).values().get()
    response = marketer_api.patch(f"/syncs/{sync.pk}", encode(body, cohort, connection))
    event(f"{response.status_code}")
    if response.status_code == 200:
        return
    check_answer(response)
    assert Sync.objects.filter(pk=sync.pk).values().get() == before
