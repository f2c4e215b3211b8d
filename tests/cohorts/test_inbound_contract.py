"""The inbound cohort-import API against the Braze partner contract (docs/partners/inbound.md
§2 to §7).

Bodies start from the documented examples, with our key as client_secret.
"""

import io
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cohorts.inbound import service as inbound_service
from cohorts.inbound import views as inbound
from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort, CohortMember, ImportRequest, RefusedImportCount
from cohorts.signals import cohort_changed
from connections.keys import generate_import_key, revoke_import_key
from tests.queues import queues_at

pytestmark = pytest.mark.django_db

PARTNER = "amplitude"
COHORTS = f"/partners/{PARTNER}/cohorts"
USERS = f"/partners/{PARTNER}/cohorts/users"
CREATED = {"message": "success"}
UNKNOWN_COHORT = "Unknown cohort_id coh_nope: create it first with POST /partners/amplitude/cohorts"
BAD_CHANGES = (
    "cohort_changes must be an array of objects with user_ids and/or device_ids string arrays, "
    "or an aliases object"
)
BAD_ALIASES = "aliases must be an array of objects with alias_name and alias_label strings"
TOO_MANY = "Only 1000 user_ids, device_ids and aliases allowed per request"
MISSING = object()


@pytest.fixture(autouse=True)
def _clean_redis(rq_redis):
    return rq_redis


@pytest.fixture
def key_and_secret():
    return generate_import_key(partner=PARTNER, name="Amplitude prod", actor=None)


@pytest.fixture
def key(key_and_secret):
    return key_and_secret[0]


@pytest.fixture
def secret(key_and_secret):
    return key_and_secret[1]


def refused():
    """The refused-request counts by reason, summed over minutes."""
    counts: dict[str, int] = {}
    for reason, count in RefusedImportCount.objects.values_list("reason", "count"):
        counts[reason] = counts.get(reason, 0) + count
    return counts


def post(path, body, **extra):
    if isinstance(body, dict):
        body = {name: value for name, value in body.items() if value is not MISSING}
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return Client().post(path, data=data, content_type="application/json", **extra)


def cohort_example(secret, **changes):
    return {
        "partner_api_key": "pk-us-0000",
        "client_secret": secret,
        "cohort_id": "coh_8f2a",
        "name": "Churn risk (Q3)",
        "created_at": "2025-07-01T09:30:00Z",
        **changes,
    }


def users_example(secret, **changes):
    return {
        "partner_api_key": "pk-us-0000",
        "client_secret": secret,
        "cohort_id": "coh_8f2a",
        "cohort_changes": [
            {
                "user_ids": ["u-1001", "u-1002"],
                "aliases": [{"alias_name": "dev-77f3", "alias_label": "device_id"}],
            },
            {"user_ids": ["u-0999"], "device_ids": ["a1b2c3"], "should_remove": True},
        ],
        **changes,
    }


@pytest.fixture
def cohort(secret):
    assert post(COHORTS, cohort_example(secret)).status_code == 201
    return Cohort.objects.get(partner_cohort_id="coh_8f2a")


def members(cohort):
    rows = CohortMember.objects.filter(cohort=cohort).values_list("id_type", "alias_label", "value")
    return set(rows)


def ext(*values):
    return {("external_id", "", value) for value in values}


def assert_refused(response, status, message):
    assert (response.status_code, response.json()) == (status, {"message": message})
    assert response["Content-Type"] == "application/json"


# Creating and renaming cohorts


def test_the_documented_create_request_creates_the_cohort(secret):
    response = post(COHORTS, cohort_example(secret))
    assert (response.status_code, response.json()) == (201, CREATED)
    cohort = Cohort.objects.get()
    assert (cohort.name, cohort.source, cohort.partner, cohort.partner_cohort_id) == (
        "Churn risk (Q3)",
        Cohort.Source.PARTNER,
        PARTNER,
        "coh_8f2a",
    )
    assert cohort.partner_created_at == datetime(2025, 7, 1, 9, 30, tzinfo=UTC)


def test_posting_the_same_cohort_id_with_a_new_name_renames_it(cohort, secret):
    response = post(COHORTS, cohort_example(secret, name="Churn risk (Q4)"))
    assert (response.status_code, response.json()) == (201, CREATED)
    assert list(Cohort.objects.values_list("pk", "name")) == [(cohort.pk, "Churn risk (Q4)")]


def test_the_same_cohort_id_from_another_partner_is_another_cohort(cohort):
    _, other_secret = generate_import_key(partner="mixpanel", name="Mixpanel", actor=None)
    response = post("/partners/mixpanel/cohorts", cohort_example(other_secret))
    assert response.status_code == 201
    assert sorted(Cohort.objects.values_list("partner", flat=True)) == ["amplitude", "mixpanel"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cohort_id": MISSING}, "cohort_id must be a valid string"),
        ({"cohort_id": None}, "cohort_id must be a valid string"),
        ({"cohort_id": 42}, "cohort_id must be a valid string"),
        ({"cohort_id": ""}, "cohort_id must be a valid string"),
        ({"cohort_id": "c" * 256}, "cohort_id must be a valid string"),
        ({"cohort_id": "coh\x00"}, "cohort_id must be a valid string"),
        ({"name": MISSING}, "name must be a non-empty string"),
        ({"name": None}, "name must be a non-empty string"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"name": "   "}, "name must be a non-empty string"),
        ({"name": ["Churn"]}, "name must be a non-empty string"),
        ({"name": "n" * 256}, "name must be at most 255 characters"),
        ({"name": "Churn\x00"}, "name must not contain NUL characters or unpaired surrogates"),
        ({"created_at": MISSING}, "created_at must be a valid ISO-8601 time"),
        ({"created_at": None}, "created_at must be a valid ISO-8601 time"),
        ({"created_at": "yesterday"}, "created_at must be a valid ISO-8601 time"),
        ({"created_at": 1751362200}, "created_at must be a valid ISO-8601 time"),
        ({"created_at": "0001-01-01T00:00:00+01:00"}, "created_at must be a valid ISO-8601 time"),
    ],
)
def test_a_bad_cohort_field_is_refused_with_its_message(cohort, secret, changes, message):
    assert_refused(
        post(COHORTS, cohort_example(secret, **{"name": "Renamed", **changes})), 400, message
    )
    assert list(Cohort.objects.values_list("name", flat=True)) == ["Churn risk (Q3)"]


# Membership changes


def test_the_documented_users_request_adds_and_removes_in_one_go(cohort, secret):
    apply_changes(cohort.pk, add=[Identity("external_id", "u-0999"), Identity("device_id", "zz")])
    response = post(USERS, users_example(secret))
    assert (response.status_code, response.json()) == (201, CREATED)
    assert members(cohort) == ext("u-1001", "u-1002") | {
        ("user_alias", "device_id", "dev-77f3"),
        ("device_id", "", "zz"),
    }
    cohort.refresh_from_db()
    assert cohort.member_count == 4
    logged = ImportRequest.objects.get(endpoint="cohorts/users")
    assert (logged.added, logged.removed, logged.ignored, logged.status, logged.http_status) == (
        3,
        1,
        1,
        "applied",
        201,
    )


def test_adding_a_present_member_or_removing_an_absent_one_is_harmless(cohort, secret):
    assert post(USERS, users_example(secret)).status_code == 201
    before = members(cohort)
    response = post(USERS, users_example(secret))
    assert (response.status_code, response.json()) == (201, CREATED)
    assert members(cohort) == before
    latest = ImportRequest.objects.filter(endpoint="cohorts/users").first()
    assert (latest.added, latest.removed, latest.ignored) == (0, 0, 5)


@pytest.mark.parametrize(("last_removes", "present"), [(True, False), (False, True)])
def test_the_last_change_object_naming_an_identity_wins(cohort, secret, last_removes, present):
    changes = [
        {"user_ids": ["u-1"], "should_remove": not last_removes},
        {"user_ids": ["u-1"], "should_remove": last_removes},
    ]
    response = post(USERS, users_example(secret, cohort_changes=changes))
    assert response.status_code == 201
    assert (members(cohort) == ext("u-1")) is present


def test_aliases_are_members_by_name_and_label(cohort, secret):
    aliases = [
        {"alias_name": "a-1", "alias_label": "amplitude_id"},
        {"alias_name": "a-1", "alias_label": "device_id"},
    ]
    changes = [{"aliases": aliases}, {"aliases": aliases[1:], "should_remove": True}]
    assert post(USERS, users_example(secret, cohort_changes=changes)).status_code == 201
    assert members(cohort) == {("user_alias", "amplitude_id", "a-1")}


def test_an_empty_change_list_is_accepted_and_changes_nothing(cohort, secret):
    response = post(USERS, users_example(secret, cohort_changes=[]))
    assert (response.status_code, response.json()) == (201, CREATED)
    assert members(cohort) == set()


def many(count, prefix="u"):
    return [f"{prefix}-{n}" for n in range(count)]


def test_a_thousand_identifiers_across_change_objects_are_accepted(cohort, secret):
    changes = [
        {"user_ids": many(400)},
        {"device_ids": many(300, "d")},
        {"aliases": [{"alias_name": n, "alias_label": "l"} for n in many(299, "a")]},
        {"user_ids": ["u-0"], "should_remove": True},
    ]
    response = post(USERS, users_example(secret, cohort_changes=changes))
    assert (response.status_code, response.json()) == (201, CREATED)
    assert len(members(cohort)) == 998


@pytest.mark.parametrize(
    "changes",
    [
        [{"user_ids": many(1001)}],
        [{"user_ids": many(500)}, {"device_ids": many(500), "aliases": [{"alias_name": "x"}]}],
        [{"user_ids": ["same"] * 1001}],
    ],
    ids=["one object", "across objects", "duplicates count"],
)
def test_a_thousand_and_one_identifiers_are_refused_and_nothing_applies(cohort, secret, changes):
    assert_refused(post(USERS, users_example(secret, cohort_changes=changes)), 400, TOO_MANY)
    assert members(cohort) == set()


VALID = {"user_ids": ["u-ok"]}
HOLD = "{} must hold non-empty strings of at most 255 characters"
BE = "{} must be a non-empty string of at most 255 characters"
CHARACTERS = "{} must not contain NUL characters or unpaired surrogates"
BOOLEAN = "should_remove must be a boolean"


def after_a_valid_one(change):
    """A valid change object followed by `change`: nothing may apply when `change` is bad."""
    return {"cohort_changes": [VALID, change]}


def alias(name="a", label="l"):
    return {"alias_name": name, "alias_label": label}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cohort_id": 7}, "cohort_id must be a valid string"),
        ({"cohort_id": ""}, "cohort_id must be a valid string"),
        ({"cohort_id": MISSING}, "cohort_id must be a valid string"),
        ({"cohort_changes": MISSING}, BAD_CHANGES),
        ({"cohort_changes": None}, BAD_CHANGES),
        ({"cohort_changes": {"user_ids": ["u-1"]}}, BAD_CHANGES),
        ({"cohort_changes": [VALID, "u-1"]}, BAD_CHANGES),
        (after_a_valid_one({"user_ids": "u-1"}), BAD_CHANGES),
        (after_a_valid_one({"user_ids": ["u-1", 2]}), BAD_CHANGES),
        (after_a_valid_one({"device_ids": [None]}), BAD_CHANGES),
        (after_a_valid_one({"aliases": alias()}), BAD_ALIASES),
        (after_a_valid_one({"aliases": [{"alias_name": "a"}]}), BAD_ALIASES),
        (after_a_valid_one({"aliases": [alias(name=1)]}), BAD_ALIASES),
        (after_a_valid_one({"aliases": ["a"]}), BAD_ALIASES),
        (after_a_valid_one({"user_ids": ["u"], "should_remove": "yes"}), BOOLEAN),
        (after_a_valid_one({"user_ids": ["u"], "should_remove": 1}), BOOLEAN),
        (after_a_valid_one({"user_ids": [""]}), HOLD.format("user_ids")),
        (after_a_valid_one({"device_ids": ["d" * 256]}), HOLD.format("device_ids")),
        (after_a_valid_one({"aliases": [alias(name="")]}), BE.format("alias_name")),
        (after_a_valid_one({"aliases": [alias(label="l" * 256)]}), BE.format("alias_label")),
        (after_a_valid_one({"user_ids": ["u\x00"]}), CHARACTERS.format("user_ids")),
        (after_a_valid_one({"user_ids": ["\ud800"]}), CHARACTERS.format("user_ids")),
        (after_a_valid_one({"aliases": [alias(label="\x00")]}), CHARACTERS.format("alias_label")),
        ({"cohort_id": "coh_nope", "cohort_changes": [VALID]}, UNKNOWN_COHORT),
    ],
)
def test_a_bad_users_request_is_refused_with_its_message_and_changes_nothing(
    cohort, secret, changes, message
):
    assert_refused(post(USERS, users_example(secret, **changes)), 400, message)
    assert members(cohort) == set()
    logged = ImportRequest.objects.filter(endpoint="cohorts/users").get()
    assert (logged.status, logged.http_status, logged.error) == ("rejected", 400, message)


def test_a_rejected_request_for_a_known_cohort_shows_on_that_cohort(cohort, secret):
    post(USERS, users_example(secret, cohort_changes=[{"user_ids": many(1001)}]))
    logged = ImportRequest.objects.get(endpoint="cohorts/users")
    assert (logged.cohort, logged.partner_cohort_id) == (cohort, "coh_8f2a")


# The body


@pytest.mark.parametrize("body", ["", "not json", "[]", '"text"', "null", "[" * 100_000, b"\xff{}"])
def test_a_body_that_is_not_a_json_object_is_refused(cohort, body):
    for path in (COHORTS, USERS):
        assert_refused(post(path, body), 400, "Request body must be a JSON object")


@pytest.mark.parametrize("secret_value", [None, 1234, ["csik"]])
def test_a_missing_or_non_string_client_secret_is_refused(cohort, secret, secret_value):
    body = users_example(secret)
    body["client_secret"] = secret_value
    for path in (COHORTS, USERS):
        assert_refused(post(path, body), 400, "client_secret must be a string")


def test_the_key_may_come_as_a_bearer_token_instead(secret):
    body = cohort_example(secret)
    del body["client_secret"]
    response = post(COHORTS, body, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert (response.status_code, response.json()) == (201, CREATED)
    body = users_example(secret)
    del body["client_secret"]
    response = post(USERS, body, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert (response.status_code, response.json()) == (201, CREATED)


def test_a_bearer_token_with_a_body_that_is_not_an_object_is_refused_as_such(key, secret):
    response = post(COHORTS, "[]", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert_refused(response, 400, "Request body must be a JSON object")
    assert ImportRequest.objects.get().key == key


def test_a_request_from_an_odd_remote_address_is_still_logged(secret):
    assert post(COHORTS, cohort_example(secret), REMOTE_ADDR="unix:/run/sock").status_code == 201
    assert ImportRequest.objects.get().ip is None


def test_partner_api_key_is_accepted_and_ignored(secret):
    for value in ("pk-eu-0000", None, 17):
        assert post(COHORTS, cohort_example(secret, partner_api_key=value)).status_code == 201


def test_a_body_over_2_mb_is_refused_before_it_is_parsed(cohort, secret):
    padding = "x" * (2 * 1024 * 1024)
    body = json.dumps({**users_example(secret), "padding": padding})
    assert_refused(post(USERS, body), 413, "Request body must be at most 2 MB")
    assert members(cohort) == set()
    # Refused before a key was shown: counted, not stored row by row (#13).
    assert not ImportRequest.objects.filter(http_status=413).exists()
    assert refused() == {"too_large": 1}


class CountingStream(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_a_chunked_body_is_read_and_a_long_one_is_cut_off_after_2_mb(cohort, secret):
    def chunked(data):
        request = RequestFactory().post(USERS, data=b"", content_type="application/json")
        request.META.pop("CONTENT_LENGTH", None)
        request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
        request.META["wsgi.input"] = stream = CountingStream(data)
        return inbound.change_cohort_users(request, partner=PARTNER), stream

    response, _ = chunked(json.dumps(users_example(secret)).encode())
    assert (response.status_code, json.loads(response.content)) == (201, CREATED)
    response, stream = chunked(b"[" + b" " * (10 * 1024 * 1024))
    assert response.status_code == 413
    assert stream.bytes_read == 2 * 1024 * 1024 + 1


def test_unknown_partners_and_other_methods_get_json_errors(secret):
    response = post("/partners/braze/cohorts", cohort_example(secret))
    assert (response.status_code, response.json()) == (404, {"message": "Unknown partner"})
    response = Client().get(COHORTS)
    assert (response.status_code, response["Allow"]) == (405, "POST")
    assert response.json() == {"message": "Method not allowed: use POST"}
    assert not ImportRequest.objects.exists()


# Keys


@pytest.mark.parametrize("raw", ["dik-1234", "", "csik_" + "A" * 12 + "_" + "b" * 43])
def test_an_unknown_key_is_refused_as_an_invalid_client_secret(cohort, raw):
    for path, body in ((COHORTS, cohort_example(raw)), (USERS, users_example(raw))):
        response = post(path, body)
        assert_refused(response, 401, "Invalid client secret")
        assert "X-RateLimit-Limit" not in response
    # Anyone can send these: they are counted per reason and minute, not stored one row each.
    assert not ImportRequest.objects.filter(http_status=401).exists()
    assert sum(refused().values()) == 2


def test_a_revoked_key_is_refused_on_the_next_request(cohort, key, secret):
    revoke_import_key(key=key, actor=None)
    assert_refused(post(USERS, users_example(secret)), 401, "Unauthorized access")
    assert members(cohort) == set()
    assert ImportRequest.objects.get(http_status=401).key == key


def test_an_expired_key_is_refused(cohort, key, secret):
    key.expires_at = timezone.now() - timedelta(seconds=1)
    key.save()
    assert_refused(post(COHORTS, cohort_example(secret, name="x")), 401, "Unauthorized access")


def test_a_key_of_another_partner_is_refused_naming_only_its_prefix(cohort, key, secret):
    response = post("/partners/mixpanel/cohorts/users", users_example(secret))
    message = f"Partner not enabled for client with client secret {key.prefix}…"
    assert_refused(response, 401, message)
    logged = ImportRequest.objects.get(http_status=401)
    assert (logged.key, logged.error, logged.cohort) == (key, message, None)
    assert secret not in response.content.decode()


def test_the_key_is_never_echoed_in_a_body_or_the_log(cohort, key, secret, caplog):
    caplog.set_level(logging.DEBUG)
    revoke_import_key(key=key, actor=None)
    bodies = [post(USERS, users_example(secret)).content.decode()]
    bodies.append(post("/partners/mixpanel/cohorts", cohort_example(secret)).content.decode())
    errors = list(ImportRequest.objects.values_list("error", flat=True))
    assert not [text for text in [*bodies, *errors, caplog.text] if secret in text]


def test_using_a_key_records_when_and_from_where(key, secret):
    post(COHORTS, cohort_example(secret), REMOTE_ADDR="203.0.113.9")
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert key.last_used_ip == "203.0.113.9"


# Rate limit


def test_a_key_over_its_hourly_rate_is_refused_with_429(cohort, secret, settings, rq_redis):
    rq_redis.flushdb()  # forget the request that created the cohort
    settings.INBOUND_RATE_LIMIT_PER_HOUR = 2
    first = post(USERS, users_example(secret, cohort_changes=[VALID]))
    assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == ("2", "1")
    assert post(COHORTS, cohort_example(secret))["X-RateLimit-Remaining"] == "0"
    response = post(USERS, users_example(secret))
    assert_refused(response, 429, "Rate limit exceeded")
    assert (response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"]) == ("2", "0")
    reset = int(response["X-RateLimit-Reset"])
    assert reset % 3600 == 0
    assert 0 < reset - timezone.now().timestamp() <= 3600
    assert members(cohort) == ext("u-ok")


def test_rate_headers_come_with_refusals_after_the_key_is_accepted(cohort, secret):
    response = post(USERS, users_example(secret, cohort_id="coh_nope"))
    assert response.status_code == 400
    assert response["X-RateLimit-Limit"] == "250000"


def test_imports_go_on_without_a_limit_when_redis_is_down(
    cohort, secret, settings, caplog, monkeypatch
):
    monkeypatch.setattr(inbound_service, "_last_redis_warning", 0.0)
    settings.RQ_QUEUES = queues_at("redis://127.0.0.1:1/0", timeout=60)
    response = post(USERS, users_example(secret))
    assert (response.status_code, response.json()) == (201, CREATED)
    assert "X-RateLimit-Limit" not in response
    assert "Inbound rate limit not enforced, Redis is unreachable" in caplog.text


# How changes are written


def test_the_query_count_does_not_grow_with_the_identifiers(cohort, secret):
    def queries_for(count, prefix):
        body = users_example(secret, cohort_changes=[{"user_ids": many(count, prefix)}])
        with CaptureQueriesContext(connection) as captured:
            assert post(USERS, body).status_code == 201
        return len(captured)

    queries_for(1, "warm-up")
    assert queries_for(1000, "big") == queries_for(10, "small")


def test_each_applied_change_is_announced_once_after_commit(
    cohort, secret, django_capture_on_commit_callbacks
):
    seen = []

    def listener(sender, cohort_id, **kwargs):
        seen.append(cohort_id)

    cohort_changed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            post(USERS, users_example(secret))
            post(USERS, users_example(secret, cohort_changes=[{"user_ids": many(1001)}]))
    finally:
        cohort_changed.disconnect(listener)
    assert seen == [cohort.pk]
