"""A trait sync end to end, over real HTTP: members' properties arrive with Amplitude's
webhook (user_properties), the run sends the chosen ones to the Braze simulator as custom
attributes (types kept, a time as ISO-8601, by external ID, profiles created), the trait
ledger keeps what was sent, and the next run sends only what changed at the source."""

import json
import threading
from typing import Any
from unittest import mock

import pytest
import requests
from django.test import Client

from connections.keys import generate_import_key
from connections.partners.braze import simulator as braze_simulator
from syncs.models import Sync, SyncedTraits, SyncRun
from syncs.services import create_sync, start_run
from tests.factories import make_simulator_connection
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]

WEBHOOK = "/partners/amplitude/webhook"
TRAITS = [
    {"property": "plan"},
    {"property": "score", "attribute": "lead_score"},
    {"property": "vip"},
    {"property": "last_seen"},
    {"property": "tags"},
]
# What Amplitude sends for each user: every property the destination maps, plus one the
# sync does not choose (city), which never reaches Braze.
PROPERTIES = {
    "u1": {"plan": "pro", "score": 10, "vip": True, "last_seen": "2026-11-30 08:15:00",
           "tags": ["a", "b"], "city": "Lyon"},
    "u2": {"plan": "free", "score": 2.5, "vip": False, "last_seen": "2026-12-01T09:00:00Z",
           "tags": ["c"], "city": "Oslo"},
    "u3": {"plan": "pro", "score": 7, "vip": False, "last_seen": "2026-12-02 10:00:00",
           "tags": [], "city": "Lima"},
    "u4": {"plan": "team", "score": 0, "city": "Pune"},
}  # fmt: skip


class Received:
    """The attributes objects the simulator applied, in order, wrapping its per-object step."""

    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._apply = braze_simulator._apply_attributes

    def __call__(self, state: Any, obj: Any, index: int) -> str | None:
        error = self._apply(state, obj, index)
        if error is None:
            with self._lock:
                self.objects.append(obj)
        return error

    def take(self) -> dict[str, dict[str, Any]]:
        """What each external id was sent since the last take (the id itself left out)."""
        taken, self.objects = self.objects, []
        return {obj["external_id"]: {k: v for k, v in obj.items() if k != "external_id"}
                for obj in taken}  # fmt: skip


@pytest.fixture
def received():
    spy = Received()
    with mock.patch.object(braze_simulator, "_apply_attributes", spy):
        yield spy


@pytest.fixture
def webhook_key():
    return generate_import_key(partner="amplitude", name="Amplitude webhook", actor=None)[1]


def push(key: str, users: dict[str, dict[str, Any]], *, at: int) -> None:
    """Amplitude's Cohort Webhooks batch: these users entered the cohort, with their
    properties; applied by its job."""
    body = {
        "cohort_name": "Power users",
        "cohort_id": "amp-power",
        "in_cohort": True,
        "computed_time": str(at),
        "message_id": f"power::enter::{at}",
        "users": [{"user_id": user, "user_properties": props} for user, props in users.items()],
    }
    response = Client().post(
        WEBHOOK, json.dumps(body), content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    run_jobs("default")


def profiles(sandbox) -> dict[str, dict[str, Any]]:
    found = requests.get(f"{sandbox.url}/_sandbox/braze/profiles", timeout=30).json()
    return {key.removeprefix("external_id:"): attrs for key, attrs in found["profiles"].items()}


def trait_sync(connection, **fields) -> Sync:
    from cohorts.models import Cohort

    return create_sync(
        name="Power users traits",
        cohort=Cohort.objects.get(partner_cohort_id="amp-power"),
        connection=connection,
        identifier_mapping=["external_id"],
        cadence={"kind": "once"},
        kind=Sync.Kind.TRAITS,
        traits=fields.pop("traits", TRAITS),
        actor=None,
        **fields,
    )


def run(sync: Sync, trigger: str = SyncRun.Trigger.MANUAL) -> SyncRun:
    queued, _ = start_run(sync=sync, trigger=trigger, actor=None)
    run_jobs("runs")
    queued.refresh_from_db()
    return queued


def test_the_first_run_sends_every_members_chosen_properties_and_the_next_only_the_changes(
    connection, sandbox, received, webhook_key
):
    push(webhook_key, PROPERTIES, at=1_764_000_000)
    sync = trait_sync(connection)

    first = run(sync)
    assert first.status == SyncRun.Status.SUCCEEDED, first.error_summary
    sent = received.take()
    expected = {
        "u1": {"plan": "pro", "lead_score": 10, "vip": True,
               "last_seen": "2026-11-30T08:15:00Z", "tags": ["a", "b"]},
        "u2": {"plan": "free", "lead_score": 2.5, "vip": False,
               "last_seen": "2026-12-01T09:00:00Z", "tags": ["c"]},
        "u3": {"plan": "pro", "lead_score": 7, "vip": False,
               "last_seen": "2026-12-02T10:00:00Z", "tags": []},
        "u4": {"plan": "team", "lead_score": 0},
    }  # fmt: skip
    assert sent == expected
    # Braze created the profiles (no update-existing-only) and holds the values, types kept.
    assert profiles(sandbox) == expected
    assert (first.planned_adds, first.added, first.failed, first.skipped) == (4, 4, 0, 0)
    assert first.attributes_written == 17 == first.data_points
    assert first.added_word == "updated"
    assert SyncedTraits.objects.get(sync=sync, value="u4").values == expected["u4"]

    # At the source: three properties of two members change (the webhook sends each user's
    # properties whole).
    push(
        webhook_key,
        {
            "u1": {**PROPERTIES["u1"], "plan": "team", "score": 11},
            "u3": {**PROPERTIES["u3"], "tags": ["vip-list"]},
        },
        at=1_764_000_600,
    )
    second = run(sync)
    assert second.status == SyncRun.Status.SUCCEEDED, second.error_summary
    assert received.take() == {
        "u1": {"plan": "team", "lead_score": 11},
        "u3": {"tags": ["vip-list"]},
    }
    assert (second.planned_adds, second.added, second.attributes_written) == (2, 2, 3)
    assert profiles(sandbox)["u1"]["plan"] == "team"
    assert profiles(sandbox)["u3"]["tags"] == ["vip-list"]

    # Nothing changed since: nothing planned, nothing sent.
    third = run(sync)
    assert (third.planned_adds, third.added, third.requests) == (0, 0, 0)
    assert received.take() == {}


def test_a_number_becoming_the_same_text_or_boolean_is_a_change(connection, received, webhook_key):
    push(webhook_key, {"u1": {"plan": 1}}, at=1_764_000_000)
    sync = trait_sync(connection, traits=[{"property": "plan"}])
    run(sync)
    received.take()

    push(webhook_key, {"u1": {"plan": "1"}}, at=1_764_000_100)
    run(sync)
    assert received.take() == {"u1": {"plan": "1"}}
    push(webhook_key, {"u1": {"plan": True}}, at=1_764_000_200)
    run(sync)
    assert received.take() == {"u1": {"plan": True}}


def test_a_removed_property_is_sent_as_null_only_when_the_sync_says_so(
    connection, sandbox, received, webhook_key
):
    push(webhook_key, {"u1": {"plan": "pro", "vip": True}}, at=1_764_000_000)
    keeping = trait_sync(connection, traits=[{"property": "plan"}])
    nulling = create_sync(
        name="Nulls",
        cohort=keeping.cohort,
        connection=connection,
        identifier_mapping=["external_id"],
        cadence={"kind": "once"},
        kind=Sync.Kind.TRAITS,
        traits=[{"property": "vip"}],
        traits_send_nulls=True,
        actor=None,
    )
    run(keeping), run(nulling)
    received.take()
    assert profiles(sandbox)["u1"] == {"plan": "pro", "vip": True}

    push(webhook_key, {"u1": {}}, at=1_764_000_100)  # both properties gone at the source
    kept = run(keeping)
    assert received.take() == {} and kept.planned_adds == 0
    nulled = run(nulling)
    assert received.take() == {"u1": {"vip": None}}
    assert nulled.attributes_written == 1
    assert profiles(sandbox)["u1"] == {"plan": "pro"}
    assert SyncedTraits.objects.get(sync=nulling).values == {}
    # Sent once: the next run has nothing to remove.
    assert run(nulling).planned_adds == 0


def test_a_full_resync_sends_every_chosen_property_again(connection, received, webhook_key):
    push(webhook_key, {"u1": {"plan": "pro"}, "u2": {"plan": "free"}}, at=1_764_000_000)
    sync = trait_sync(connection, traits=[{"property": "plan", "attribute": "Plan"}])
    run(sync)
    received.take()

    resync = run(sync, SyncRun.Trigger.RESYNC)
    assert received.take() == {"u1": {"Plan": "pro"}, "u2": {"Plan": "free"}}
    assert (resync.added, resync.attributes_written) == (2, 2)


def test_a_member_without_an_external_id_is_skipped_and_a_refused_value_fails_alone(
    connection, received, webhook_key
):
    from cohorts.membership import Identity, apply_changes

    push(webhook_key, {"u1": {"plan": "p" * 300}, "u2": {"plan": "ok"}}, at=1_764_000_000)
    sync = trait_sync(connection, traits=[{"property": "plan"}])
    apply_changes(sync.cohort_id, add=[Identity("device_id", "d-1", properties={"plan": "x"})])

    done = run(sync)
    assert received.take() == {"u2": {"plan": "ok"}}
    assert (done.planned_adds, done.added, done.failed, done.skipped) == (3, 1, 1, 1)
    reasons = dict(done.errors.values_list("member", "reason"))
    assert "at most 255 characters" in reasons["external_id:u1"]
    assert reasons["device_id:d-1"].startswith("No usable identifier")
    # The failed member has nothing in the ledger: the next run tries it again.
    assert not SyncedTraits.objects.filter(sync=sync, value="u1").exists()
    assert run(sync).planned_adds == 2


def test_the_pages_of_a_trait_sync_say_updated_and_count_attributes(
    connection, received, webhook_key, marketer_client
):
    from django.urls import reverse

    push(webhook_key, {"u1": {"plan": "pro", "score": 3}, "u2": {"plan": "free"}}, at=1_764_000_000)
    sync = trait_sync(connection, traits=[{"property": "plan"}, {"property": "score"}])
    done = run(sync)

    page = marketer_client.get(reverse("syncs:run_detail", args=[sync.pk, done.pk]))
    html = page.content.decode()
    assert "<dt>Updated</dt>" in html
    assert "the 3 custom attributes written to the 2 members the destination accepted" in html
    detail = marketer_client.get(reverse("syncs:sync_detail", args=[sync.pk])).content.decode()
    assert 'id="sync-traits"' in detail
    assert "2 updated" in marketer_client.get(reverse("syncs:sync_list")).content.decode()
    resync = marketer_client.get(reverse("syncs:sync_resync", args=[sync.pk])).content.decode()
    assert "2 members with an external ID, 3 attributes" in resync
    lookup = marketer_client.get(reverse("members:lookup"), {"q": "u1"}).content.decode()
    assert "Attributes written" in lookup and "Not sent yet" not in lookup
    assert marketer_client.get("/").status_code == 200


@pytest.mark.usefixtures("checkpoint_every_batch")
def test_a_trait_run_stopped_at_a_checkpoint_resumes_and_every_member_is_written_once_in_the_ledger(
    sandbox, received, monkeypatch
):
    # Each batch its own checkpoint: the run stops at its first, with batches still to send.
    # (A group commit by time could come after all 8 batches were answered: nothing to resume.)
    # One request in flight: batches answered behind a slow first one may wait to be settled
    # (two a request in flight), and on a loaded box all 8 were answered before the first.
    connection = make_simulator_connection(sandbox, max_concurrent_requests=1)
    from cohorts.membership import Identity, apply_changes
    from cohorts.models import Cohort
    from core import stopping
    from syncs.engine import checkpoint
    from syncs.engine.run import run_sync

    cohort = Cohort.objects.create(name="Many", source=Cohort.Source.MANUAL)
    apply_changes(
        cohort.pk,
        add=[Identity("external_id", f"m{n}", properties={"n": n}) for n in range(600)],
    )
    sync = create_sync(
        name="Many traits",
        cohort=cohort,
        connection=connection,
        identifier_mapping=["external_id"],
        cadence={"kind": "once"},
        kind=Sync.Kind.TRAITS,
        traits=[{"property": "n", "attribute": "rank"}],
        actor=None,
    )
    queued, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    real_commit = checkpoint.commit

    def commit_then_stop(pending):
        status = real_commit(pending)
        stopping.request_stop()
        return status

    monkeypatch.setattr(checkpoint, "commit", commit_then_stop)
    try:
        assert run_sync(queued.pk) == "interrupted"
        queued.refresh_from_db()
        # What Braze accepted is in the trait ledger, and only that (invariant 1).
        assert 0 < queued.added == SyncedTraits.objects.filter(sync=sync).count() < 600
    finally:
        monkeypatch.undo()
        stopping.forget_stop_request()
    run_jobs()
    queued.refresh_from_db()
    assert queued.status == SyncRun.Status.SUCCEEDED
    assert (queued.planned_adds, queued.added, queued.failed, queued.skipped) == (600, 600, 0, 0)
    assert queued.attributes_written == 600
    ledger = dict(SyncedTraits.objects.filter(sync=sync).values_list("value", "values"))
    assert ledger == {f"m{n}": {"rank": n} for n in range(600)}
    assert {value["rank"] for value in profiles(sandbox).values()} == set(range(600))
