"""Properties of the inbound API: pushes keep the cohort equal to a model set, and no input
gets a 500 or a partial change."""

import itertools
import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cohorts.models import Cohort, CohortMember, ImportRequest
from connections.keys import generate_import_key

pytestmark = pytest.mark.django_db

PARTNER = "segment"
USERS = f"/partners/{PARTNER}/cohorts/users"
COHORTS = f"/partners/{PARTNER}/cohorts"
# Each example has a cohort of its own, so examples never see each other's members.
_cohort_ids = itertools.count(1)
examples = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def secret(rq_redis):
    return generate_import_key(partner=PARTNER, name="Segment", actor=None)[1]


def fresh_cohort():
    return Cohort.objects.create(
        name="Property",
        source=Cohort.Source.PARTNER,
        partner=PARTNER,
        partner_cohort_id=f"prop-{next(_cohort_ids)}",
    )


def members(cohort):
    rows = CohortMember.objects.filter(cohort=cohort).values_list("id_type", "alias_label", "value")
    return set(rows)


def post(path, body):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return Client().post(path, data=data, content_type="application/json")


# The same few values in every field, so that pushes collide and types must stay apart.
values = st.sampled_from(["x", "y", "z"])
changes = st.fixed_dictionaries(
    {},
    optional={
        "user_ids": st.lists(values, max_size=4),
        "device_ids": st.lists(values, max_size=3),
        "aliases": st.lists(
            st.builds(
                lambda name, label: {"alias_name": name, "alias_label": label},
                values,
                st.sampled_from(["device_id", "amplitude_id"]),
            ),
            max_size=3,
        ),
        "should_remove": st.booleans(),
    },
)


def identities(change):
    yield from (("external_id", "", value) for value in change.get("user_ids", []))
    yield from (("device_id", "", value) for value in change.get("device_ids", []))
    for alias in change.get("aliases", []):
        yield ("user_alias", alias["alias_label"], alias["alias_name"])


@examples
@given(pushes=st.lists(st.lists(changes, max_size=4), min_size=1, max_size=6))
def test_any_sequence_of_pushes_leaves_the_cohort_equal_to_a_model_set(secret, pushes):
    cohort = fresh_cohort()
    model = set()
    for push in pushes:
        before = set(model)
        for change in push:
            for identity in identities(change):
                if change.get("should_remove", False):
                    model.discard(identity)
                else:
                    model.add(identity)
        body = {
            "client_secret": secret,
            "cohort_id": cohort.partner_cohort_id,
            "cohort_changes": push,
        }
        assert post(USERS, body).status_code == 201
        logged = ImportRequest.objects.filter(cohort=cohort).first()
        sent = sum(1 for change in push for _ in identities(change))
        assert (logged.added, logged.removed) == (len(model - before), len(before - model))
        assert logged.added + logged.removed + logged.ignored == sent
    assert members(cohort) == model
    cohort.refresh_from_db()
    assert cohort.member_count == len(model)


any_text = st.text(st.characters(exclude_categories=()), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3)
    ),
    max_leaves=12,
)


def often(usual, *others):
    """`usual` three times in four, else something odd: most examples pass the earlier checks."""
    unusual = st.one_of(*others, json_values)
    return st.sampled_from(range(4)).flatmap(lambda n: usual if n else unusual)


def mostly(value, *others):
    return often(st.just(value), *others)


identifiers = st.lists(often(st.just("u-1") | any_text), max_size=3)
alias = st.fixed_dictionaries({"alias_name": any_text, "alias_label": st.just("device_id")})
loose_changes = st.fixed_dictionaries(
    {},
    optional={
        "user_ids": often(identifiers),
        "device_ids": often(identifiers),
        "aliases": often(st.lists(often(alias, st.dictionaries(any_text, any_text)), max_size=3)),
        "should_remove": often(st.booleans()),
    },
)
secrets = mostly("KEY", st.just("dik-1234"))
cohort_ids = mostly("COHORT", st.just("coh_unknown"), any_text)
optional = {"partner_api_key": json_values}
users_payloads = st.fixed_dictionaries(
    {
        "client_secret": secrets,
        "cohort_id": cohort_ids,
        "cohort_changes": often(st.lists(loose_changes, max_size=3)),
    },
    optional=optional,
)
cohort_payloads = st.fixed_dictionaries(
    {
        "client_secret": secrets,
        "cohort_id": cohort_ids,
        "name": mostly("Churn risk", any_text),
        "created_at": mostly("2025-07-01T09:30:00Z", any_text),
    },
    optional=optional,
)
anything = st.one_of(users_payloads, cohort_payloads, json_values, st.binary(max_size=40))
requests = st.one_of(
    st.tuples(st.just(USERS), users_payloads),
    st.tuples(st.just(COHORTS), cohort_payloads),
    st.tuples(st.sampled_from([USERS, COHORTS]), anything),
)


@examples
@given(request=requests)
def test_no_input_gets_a_500_or_a_partial_change(secret, request):
    path, body = request
    cohort = fresh_cohort()
    CohortMember.objects.create(cohort=cohort, id_type="external_id", value="present")
    if isinstance(body, dict):
        if body.get("client_secret") == "KEY":
            body["client_secret"] = secret
        if body.get("cohort_id") == "COHORT":
            body["cohort_id"] = cohort.partner_cohort_id
    before = members(cohort)
    response = post(path, body)
    event(f"{path} {response.status_code}")
    assert response.status_code in {201, 400, 401}
    assert set(response.json()) == {"message"}
    if response.status_code != 201:
        assert members(cohort) == before
