"""POST /partners/amplitude/webhook against batches in Amplitude's Cohort Webhooks format
(docs/partners/amplitude.md §9): stored and answered at once, applied by a real RQ job, a
repeated message_id applied once, enter and exit kept in order of computed_time, and bad input
refused with nothing applied."""

import json

import pytest
from django.test import Client
from django.utils import timezone

from cohorts.inbound.amplitude.service import requeue_waiting_batches
from cohorts.models import (
    AmplitudeBatch,
    AmplitudeMemberState,
    Cohort,
    CohortMember,
    ImportRequest,
    RefusedImportCount,
)
from connections.keys import generate_import_key, revoke_import_key
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]

URL = "/partners/amplitude/webhook"
# Amplitude's documented example of the default payload, as its template writes it.
RECORDED = {
    "cohort_name": "My Test Cohort",
    "cohort_id": "7khm89cz",
    "in_cohort": True,
    "computed_time": "1692206763",
    "message_id": "9baaa88f-9d46-4ee5-a946-be0c6aea0046::enter::0",
    "users": [
        {"user_id": "user_one@example.com"},
        {"user_id": "user_two@example.com"},
        {"user_id": "user_three@example.com"},
    ],
}


@pytest.fixture
def raw_key():
    return generate_import_key(partner="amplitude", name="Amplitude webhook", actor=None)[1]


def batch(users, *, enter=True, at=1692206763, n=0, **fields):
    direction = "enter" if enter else "exit"
    return {
        **RECORDED,
        "in_cohort": enter,
        "computed_time": str(at),
        "message_id": f"9baaa88f-0000-4ee5-a946-{at:012d}::{direction}::{n}",
        "users": [{"user_id": user} for user in users],
        **fields,
    }


def post(body, key, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body)
    if key is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return Client().post(URL, data, content_type="application/json", **headers)


def members():
    return set(CohortMember.objects.values_list("value", flat=True))


def nothing_applied():
    assert not Cohort.objects.exists()
    assert not AmplitudeBatch.objects.exists()
    assert not CohortMember.objects.exists()


# Accepted, stored, applied after


def test_a_recorded_batch_is_answered_at_once_and_applied_by_its_job(raw_key):
    response = post(RECORDED, raw_key)
    assert response.status_code == 200
    assert response.json() == {"message": "accepted"}
    cohort = Cohort.objects.get()
    assert (cohort.name, cohort.partner, cohort.partner_cohort_id) == (
        "My Test Cohort",
        "amplitude",
        "7khm89cz",
    )
    logged = ImportRequest.objects.get()
    assert (logged.status, logged.endpoint, logged.added) == ("queued", "webhook", 0)
    assert not members()
    run_jobs("default")
    assert members() == {"user_one@example.com", "user_two@example.com", "user_three@example.com"}
    assert set(CohortMember.objects.values_list("id_type", flat=True)) == {"external_id"}
    logged.refresh_from_db()
    assert (logged.status, logged.added, logged.removed, logged.ignored) == ("applied", 3, 0, 0)
    assert logged.cohort == cohort and logged.http_status == 200
    cohort.refresh_from_db()
    assert cohort.member_count == 3
    assert AmplitudeBatch.objects.get().user_ids == []


def test_an_exit_batch_removes_its_users(raw_key):
    post(batch(["u1", "u2", "u3"], at=100), raw_key)
    post(batch(["u2", "u9"], enter=False, at=200), raw_key)
    run_jobs("default")
    assert members() == {"u1", "u3"}
    exit_logged = ImportRequest.objects.order_by("id").last()
    assert (exit_logged.removed, exit_logged.ignored) == (1, 1)
    assert Cohort.objects.get().member_count == 2


def test_a_batch_of_1000_users_with_properties_is_applied_whole(raw_key):
    users = [
        {
            "user_id": f"user-{n:04d}",
            "user_properties": {"plan": "pro", "ltv": n * 1.5, "beta": n % 2 == 0, "tags": ["a"]},
        }
        for n in range(1000)
    ]
    response = post({**RECORDED, "users": users}, raw_key)
    assert response.status_code == 200
    run_jobs("default")
    assert len(members()) == 1000
    assert Cohort.objects.get().member_count == 1000
    assert ImportRequest.objects.get().added == 1000


# Duplicates and order


def test_a_repeated_message_id_is_applied_once_and_logged_as_a_duplicate(raw_key):
    first = batch(["u1", "u2"], at=100)
    assert post(first, raw_key).json() == {"message": "accepted"}
    run_jobs("default")
    post(batch(["u1"], enter=False, at=200), raw_key)
    run_jobs("default")
    again = post(first, raw_key)
    assert again.status_code == 200
    assert again.json() == {"message": "already received"}
    run_jobs("default")
    # The retried enter did not put u1 back.
    assert members() == {"u2"}
    assert AmplitudeBatch.objects.count() == 2
    duplicate = ImportRequest.objects.get(status="duplicate")
    assert (duplicate.added, duplicate.removed, duplicate.ignored) == (0, 0, 2)


def test_a_duplicate_before_the_first_is_applied_is_still_one(raw_key):
    body = batch(["u1", "u2"], at=100)
    post(body, raw_key)
    post(body, raw_key)
    run_jobs("default")
    assert members() == {"u1", "u2"}
    assert ImportRequest.objects.get(status="applied").added == 2


def test_an_older_enter_arriving_after_a_newer_exit_changes_nothing_for_that_user(raw_key):
    post(batch(["u1"], enter=False, at=200), raw_key)
    run_jobs("default")
    post(batch(["u1", "u2"], at=100), raw_key)
    run_jobs("default")
    assert members() == {"u2"}
    late = ImportRequest.objects.order_by("id").last()
    assert (late.added, late.ignored) == (1, 1)
    state = AmplitudeMemberState.objects.get(user_id="u1")
    assert (state.in_cohort, state.computed_at.timestamp()) == (False, 200)


def test_an_older_exit_arriving_after_a_newer_enter_leaves_the_user_in(raw_key):
    post(batch(["u1", "u2"], at=300), raw_key)
    post(batch(["u1", "u2"], enter=False, at=250), raw_key)
    run_jobs("default")
    assert members() == {"u1", "u2"}
    assert ImportRequest.objects.order_by("id").last().removed == 0


def test_enter_exit_enter_in_any_arrival_order_ends_as_the_latest_says(raw_key):
    post(batch(["u1"], at=300, n=1), raw_key)
    post(batch(["u1"], enter=False, at=200), raw_key)
    post(batch(["u1"], at=100), raw_key)
    run_jobs("default")
    assert members() == {"u1"}
    post(batch(["u1"], enter=False, at=400), raw_key)
    run_jobs("default")
    assert members() == set()


def test_the_cohort_takes_the_latest_computed_name(raw_key):
    post(batch(["u1"], at=200, cohort_name="Power users (new)"), raw_key)
    run_jobs("default")
    post(batch(["u2"], at=100, cohort_name="Power users"), raw_key)
    run_jobs("default")
    assert Cohort.objects.get().name == "Power users (new)"
    post(batch(["u3"], at=300, cohort_name="Power users v3"), raw_key)
    run_jobs("default")
    assert Cohort.objects.get().name == "Power users v3"


# Keys: 401 and nothing applied


def test_an_unknown_key_is_refused_counted_and_nothing_applied(raw_key):
    made_up = raw_key[:-4] + ("0000" if not raw_key.endswith("0000") else "1111")
    response = post(RECORDED, made_up)
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid client secret"}
    nothing_applied()
    assert not ImportRequest.objects.exists()
    assert RefusedImportCount.objects.get().reason == "unknown_key"


def test_a_missing_key_is_refused_with_where_to_put_it(raw_key):
    for headers in ({}, {"HTTP_AUTHORIZATION": f"Basic {raw_key}"}):
        response = post(RECORDED, None, **headers)
        assert response.status_code == 401
        assert response.json() == {
            "message": "Send the data-import key as Authorization: Bearer <key>"
        }
    nothing_applied()
    assert RefusedImportCount.objects.get().count == 2


def test_a_revoked_key_is_refused_from_the_next_batch_and_logged(raw_key):
    from connections.models import ImportKey

    revoke_import_key(key=ImportKey.objects.get(), actor=None)
    response = post(RECORDED, raw_key)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized access"}
    nothing_applied()
    refused = ImportRequest.objects.get()
    assert (refused.status, refused.endpoint, refused.http_status) == ("rejected", "webhook", 401)


def test_a_key_of_another_partner_is_refused(db):
    _, appsflyer_key = generate_import_key(partner="appsflyer", name="AF", actor=None)
    response = post(RECORDED, appsflyer_key)
    assert response.status_code == 401
    assert response.json()["message"].startswith("Partner not enabled for client")
    nothing_applied()


# Bad bodies: 4xx and nothing applied


def test_a_body_over_5_mb_is_refused_before_it_is_read(raw_key):
    padding = "x" * (5 * 1024 * 1024)
    response = post({**RECORDED, "padding": padding}, raw_key)
    assert response.status_code == 413
    assert response.json() == {"message": "Request body must be at most 5 MB"}
    nothing_applied()


def test_more_than_1000_users_are_refused(raw_key):
    response = post(batch([f"u{n}" for n in range(1001)]), raw_key)
    assert response.status_code == 400
    assert response.json()["message"].startswith("users: at most 1000 per batch")
    nothing_applied()
    assert ImportRequest.objects.get().error.startswith("users: at most 1000")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Request body must be a JSON object"),
        (b"[1, 2]", "Request body must be a JSON object"),
        ({**RECORDED, "cohort_id": ""}, "cohort_id must be a non-empty string"),
        ({**RECORDED, "cohort_id": 42}, "cohort_id must be a non-empty string"),
        ({**RECORDED, "cohort_name": None}, "cohort_name must be a non-empty string"),
        ({**RECORDED, "in_cohort": "true"}, "in_cohort must be true or false"),
        ({**RECORDED, "computed_time": "yesterday"}, "computed_time must be epoch seconds"),
        ({**RECORDED, "computed_time": True}, "computed_time must be epoch seconds"),
        ({**RECORDED, "computed_time": "1e300"}, "computed_time must be epoch seconds"),
        ({k: v for k, v in RECORDED.items() if k != "message_id"}, "message_id must be"),
        ({**RECORDED, "users": {"user_id": "u1"}}, "users must be an array of objects"),
        ({**RECORDED, "users": ["u1"]}, "users must be an array of objects"),
        ({**RECORDED, "users": [{"user_id": "u1"}, {"user_id": 7}]}, "users[1].user_id must"),
        ({**RECORDED, "users": [{"user_id": "u\x00"}]}, "users[0].user_id must"),
        (
            {**RECORDED, "users": [{"user_id": "u1", "user_properties": ["plan"]}]},
            "users[0].user_properties must be an object",
        ),
    ],
)
def test_a_malformed_batch_is_refused_with_a_clear_message(raw_key, body, message):
    response = post(body, raw_key)
    assert response.status_code == 400
    assert response.json()["message"].startswith(message)
    nothing_applied()
    assert ImportRequest.objects.get().status == "rejected"


def test_only_post_is_allowed(db):
    response = Client().get(URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"


# A batch whose job Redis lost waits in the database


def test_a_batch_whose_job_was_lost_is_queued_again_and_applied(raw_key, rq_redis):
    post(RECORDED, raw_key)
    rq_redis.flushdb()
    assert requeue_waiting_batches() == 0  # within the grace after its commit
    later = timezone.now() + timezone.timedelta(minutes=3)
    assert requeue_waiting_batches(now=later) == 1
    run_jobs("default")
    assert len(members()) == 3
    assert AmplitudeBatch.objects.get().status == "applied"


def test_a_batch_whose_job_failed_is_logged_as_not_applied(raw_key, monkeypatch):
    from cohorts.inbound.amplitude import service

    post(RECORDED, raw_key)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(service, "apply_changes", broken)
    run_jobs("default")
    assert AmplitudeBatch.objects.get().status == "queued"  # rolled back with its job
    later = timezone.now() + timezone.timedelta(minutes=3)
    assert requeue_waiting_batches(now=later) == 1
    assert AmplitudeBatch.objects.get().status == "failed"
    logged = ImportRequest.objects.get()
    assert (logged.status, logged.added) == ("rejected", 0)
    assert "nothing of it was applied" in logged.error
    assert not members()
