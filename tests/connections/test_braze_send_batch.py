"""Braze.send_batch: the exact /users/track payload, and the simulator over real HTTP."""

from collections.abc import Sequence
from typing import Any

import pytest
import requests

from connections.partners.base import BatchResult, RateLimitSignal, Recipient
from connections.partners.braze import Braze
from connections.partners.braze.config import BrazeConfig
from connections.partners.braze.payload import build_track_payload, split_outcome
from connections.partners.http import BatchTooLarge, ObjectsRefused, PartnerError
from connections.sandbox import DEMO_BRAZE_KEY
from core.egress_client import EgressClient

LABEL = "churn_risk_q3"


def _braze(url: str, secret: str = DEMO_BRAZE_KEY, **config: Any) -> Braze:
    return Braze(BrazeConfig(instance="custom", custom_endpoint=url, **config), secret)


def _ext(ref: int, value: str | None = None) -> Recipient:
    return Recipient(ref=ref, identifier_type="external_id", identifier=value or f"u-{ref}")


def _profile(sandbox: Any, key: str) -> dict[str, Any] | None:
    response = requests.get(f"{sandbox.url}/_sandbox/braze/profiles/{key}", timeout=5)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    attributes: dict[str, Any] = response.json()["attributes"]
    return attributes


def _sandbox_post(sandbox: Any, route: str, body: dict[str, Any]) -> None:
    requests.post(f"{sandbox.url}/_sandbox/{route}", json=body, timeout=5).raise_for_status()


def _send(
    braze: Braze, add: Sequence[Recipient] = (), remove: Sequence[Recipient] = (), **options: Any
) -> BatchResult:
    return braze.send_batch(cohort_label=LABEL, add=add, remove=remove, options=options)


# The exact payload, no HTTP.


def _payload(mode: str, update_existing_only: bool = True) -> dict[str, Any]:
    payload, refs = build_track_payload(
        cohort_label=LABEL,
        add=[_ext(1)],
        remove=[Recipient(2, "user_alias", "dev-77f3", "device_id")],
        mode=mode,
        array_attribute="cohorts_in",
        update_existing_only=update_existing_only,
        default_alias_label="",
    )
    assert refs == [1, 2]
    return payload


def test_array_mode_payload_adds_and_removes_the_label_in_the_array_attribute() -> None:
    assert _payload("array") == {
        "attributes": [
            {
                "external_id": "u-1",
                "_update_existing_only": True,
                "cohorts_in": {"add": [LABEL]},
            },
            {
                "user_alias": {"alias_name": "dev-77f3", "alias_label": "device_id"},
                "_update_existing_only": True,
                "cohorts_in": {"remove": [LABEL]},
            },
        ]
    }


def test_boolean_mode_payload_sets_in_cohort_true_and_false() -> None:
    assert _payload("boolean", update_existing_only=False) == {
        "attributes": [
            {"external_id": "u-1", "_update_existing_only": False, f"In {LABEL}": True},
            {
                "user_alias": {"alias_name": "dev-77f3", "alias_label": "device_id"},
                # A removal never creates a profile, whatever the connection says (#11).
                "_update_existing_only": True,
                f"In {LABEL}": False,
            },
        ]
    }


def test_a_removal_creates_no_profile_even_with_update_existing_only_off(sandbox) -> None:
    braze = _braze(sandbox.url, membership_mode="boolean", update_existing_only=False)
    result = braze.send_batch(cohort_label=LABEL, add=[], remove=[_ext(9)], options={}, client=None)
    assert result.accepted == [9]
    assert _profile(sandbox, "external_id:u-9") is None


def test_both_mode_payload_carries_the_array_and_the_boolean() -> None:
    objects = _payload("both")["attributes"]
    assert objects[0]["cohorts_in"] == {"add": [LABEL]} and objects[0][f"In {LABEL}"] is True
    assert objects[1]["cohorts_in"] == {"remove": [LABEL]} and objects[1][f"In {LABEL}"] is False


def test_a_user_alias_without_a_label_takes_the_connection_default() -> None:
    payload, _ = build_track_payload(
        cohort_label=LABEL,
        add=[Recipient(1, "user_alias", "dev-1"), Recipient(2, "braze_id", "b-2")],
        remove=[],
        mode="boolean",
        array_attribute="x",
        update_existing_only=True,
        default_alias_label="device_id",
    )
    assert payload["attributes"][0]["user_alias"] == {
        "alias_name": "dev-1",
        "alias_label": "device_id",
    }
    assert payload["attributes"][1]["braze_id"] == "b-2"


def test_an_unknown_membership_mode_option_is_refused() -> None:
    with pytest.raises(ValueError, match="membership mode"):
        _payload("sometimes")


# The simulator over real HTTP.


def test_array_mode_add_then_remove_leaves_the_array_without_the_label(sandbox: Any) -> None:
    braze = _braze(sandbox.url, update_existing_only=False)
    added = _send(braze, add=[_ext(1), _ext(2)])
    assert (added.accepted, added.failed, added.requests, added.status) == ([1, 2], [], 1, 201)
    assert _profile(sandbox, "external_id:u-1") == {"cohortsync_cohorts": [LABEL]}

    removed = _send(braze, remove=[_ext(1)])
    assert removed.accepted == [1]
    assert _profile(sandbox, "external_id:u-1") == {"cohortsync_cohorts": []}
    assert _profile(sandbox, "external_id:u-2") == {"cohortsync_cohorts": [LABEL]}


def test_boolean_mode_sets_in_label_true_then_false(sandbox: Any) -> None:
    braze = _braze(sandbox.url, membership_mode="boolean", update_existing_only=False)
    _send(braze, add=[_ext(1)])
    assert _profile(sandbox, "external_id:u-1") == {f"In {LABEL}": True}
    _send(braze, remove=[_ext(1)])
    assert _profile(sandbox, "external_id:u-1") == {f"In {LABEL}": False}


def test_both_mode_writes_the_array_and_the_boolean(sandbox: Any) -> None:
    braze = _braze(sandbox.url, membership_mode="both", update_existing_only=False)
    _send(braze, add=[_ext(1)])
    assert _profile(sandbox, "external_id:u-1") == {
        "cohortsync_cohorts": [LABEL],
        f"In {LABEL}": True,
    }


def test_the_membership_mode_option_overrides_the_connection(sandbox: Any) -> None:
    braze = _braze(sandbox.url, membership_mode="array", update_existing_only=False)
    _send(braze, add=[_ext(1)], membership_mode="boolean")
    assert _profile(sandbox, "external_id:u-1") == {f"In {LABEL}": True}


def test_update_existing_only_never_creates_unknown_profiles(sandbox: Any) -> None:
    _send(_braze(sandbox.url, update_existing_only=False), add=[_ext(1)])
    result = _send(_braze(sandbox.url, update_existing_only=True), add=[_ext(1), _ext(2)])

    # Braze accepts an update-only object for an unknown user and applies it to nobody.
    assert result.accepted == [1, 2]
    assert _profile(sandbox, "external_id:u-1") == {"cohortsync_cohorts": [LABEL]}
    assert _profile(sandbox, "external_id:u-2") is None
    skipped = requests.get(f"{sandbox.url}/_sandbox/braze/skipped", timeout=5).json()["skipped"]
    assert [item["identifier"] for item in skipped] == ["external_id:u-2"]


def test_a_user_alias_is_created_when_update_existing_only_is_off(sandbox: Any) -> None:
    # Braze defaults to update-only for aliases, so this passes only if false is sent explicitly.
    braze = _braze(sandbox.url, update_existing_only=False, alias_label="device_id")
    result = _send(braze, add=[Recipient(7, "user_alias", "dev-77f3")])
    assert result.accepted == [7]
    assert _profile(sandbox, "alias:device_id:dev-77f3") == {"cohortsync_cohorts": [LABEL]}


def test_a_braze_id_updates_only_an_existing_profile(sandbox: Any) -> None:
    braze = _braze(sandbox.url, update_existing_only=False)
    result = _send(braze, add=[Recipient(3, "braze_id", "5f2a0c")])
    # Braze mints braze_ids itself: an unknown one is skipped, never created.
    assert result.accepted == [3]
    assert _profile(sandbox, "braze_id:5f2a0c") is None
    skipped = requests.get(f"{sandbox.url}/_sandbox/braze/skipped", timeout=5).json()["skipped"]
    assert [item["identifier"] for item in skipped] == ["braze_id:5f2a0c"]


def test_per_object_errors_fail_only_the_members_they_point_at(sandbox: Any) -> None:
    braze = _braze(sandbox.url, update_existing_only=False)
    # Braze answers an empty identifier with a non-fatal error item pointing at its index.
    result = _send(
        braze,
        add=[_ext(10), Recipient(11, "external_id", "")],
        remove=[_ext(12), Recipient(13, "braze_id", "")],
    )
    assert result.status == 201
    assert result.accepted == [10, 12]
    assert [ref for ref, _ in result.failed] == [11, 13]
    assert "external_id" in result.failed[0][1] and "braze_id" in result.failed[1][1]


def test_an_error_without_an_index_fails_nobody_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {
        "message": "success",
        "errors": [
            {"type": "quota warning"},
            {"type": "bad event", "input_array": "events", "index": 0},
            {"type": "bad attribute", "input_array": "attributes", "index": 1},
        ],
    }
    accepted, failed = split_outcome(body, [5, 6, 7])
    assert (accepted, failed) == ([5, 7], [(6, "bad attribute")])
    assert "quota warning" in caplog.text and "bad event" in caplog.text


def test_a_batch_with_no_valid_object_is_refused_whole_naming_each_object(
    sandbox: Any,
) -> None:
    braze = _braze(sandbox.url, update_existing_only=False)
    with pytest.raises(ObjectsRefused) as caught:
        braze.send_batch(cohort_label="x" * 256, add=[_ext(1), _ext(2)], remove=[], options={})
    assert caught.value.status == 400
    assert [ref for ref, _ in caught.value.failed] == [1, 2]
    assert all("255" in reason for _, reason in caught.value.failed)


def test_too_many_objects_asks_for_the_next_documented_cap_then_for_halves(
    sandbox: Any,
) -> None:
    _sandbox_post(sandbox, "config", {"braze_object_cap": 20})
    braze = _braze(sandbox.url, update_existing_only=False)
    with pytest.raises(BatchTooLarge) as caught:
        _send(braze, add=[_ext(n) for n in range(75)])
    assert caught.value.limit == 50
    assert "Max Input Length Exceeded" in caught.value.message
    with pytest.raises(BatchTooLarge) as caught:
        _send(braze, add=[_ext(n) for n in range(50)])
    assert caught.value.limit == 25


def test_75_objects_are_accepted_and_76_are_refused_before_any_request(sandbox: Any) -> None:
    braze = _braze(sandbox.url, update_existing_only=False)
    assert braze.max_batch_size() == 75
    result = _send(braze, add=[_ext(n) for n in range(40)], remove=[_ext(n) for n in range(40, 75)])
    assert len(result.accepted) == 75

    def requests_seen() -> Any:
        return requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()["requests"]

    before = requests_seen()
    with pytest.raises(ValueError, match="76"):
        _send(braze, add=[_ext(n) for n in range(76)])
    assert requests_seen() == before


def test_a_bad_key_raises_an_auth_error_that_does_not_contain_the_key(sandbox: Any) -> None:
    secret = "braze-key-nobody-knows-0000"
    with pytest.raises(PartnerError) as caught:
        _send(_braze(sandbox.url, secret=secret), add=[_ext(1)])
    assert caught.value.auth and not caught.value.retryable and caught.value.status == 401
    assert secret not in str(caught.value) and secret not in repr(caught.value.body)


def test_429_is_retryable_and_carries_the_rate_limit_signal(sandbox: Any) -> None:
    _sandbox_post(sandbox, "config", {"braze_rate_limit": 1, "braze_rate_window": 60})
    braze = _braze(sandbox.url, update_existing_only=False)
    first = _send(braze, add=[_ext(1)])
    assert first.rate_limit is not None and first.rate_limit.limit == 1
    assert first.rate_limit.remaining == 0 and first.rate_limit.reset_at is not None

    with pytest.raises(PartnerError) as caught:
        _send(braze, add=[_ext(2)])
    error = caught.value
    assert error.status == 429 and error.retryable and not error.auth
    signal = error.rate_limit
    assert isinstance(signal, RateLimitSignal)
    assert (signal.limit, signal.remaining) == (1, 0)
    # Still empty, so the reset is no earlier than the one announced with the first answer.
    assert signal.reset_at is not None and signal.reset_at >= first.rate_limit.reset_at


def test_503_is_retryable(sandbox: Any) -> None:
    _sandbox_post(sandbox, "faults", {"partner": "braze", "statuses": [503]})
    with pytest.raises(PartnerError) as caught:
        _send(_braze(sandbox.url), add=[_ext(1)])
    assert caught.value.status == 503 and caught.value.retryable


def test_batches_sent_through_one_client_share_one_connection(sandbox: Any) -> None:
    braze = _braze(sandbox.url, update_existing_only=False)
    with EgressClient() as client:
        for ref in range(3):
            result = braze.send_batch(
                cohort_label=LABEL, add=[_ext(ref)], remove=[], options={}, client=client
            )
            assert result.accepted == [ref]
    # The read below opens a connection of its own.
    assert requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()["connections"] == 2


def test_rate_limit_headers_are_read_in_any_case() -> None:
    signal = RateLimitSignal.from_headers(
        {"X-RATELIMIT-LIMIT": "3000", "x-ratelimit-remaining": "12", "X-RateLimit-Reset": "1700"}
    )
    assert signal == RateLimitSignal(limit=3000, remaining=12, reset_at=1700.0)
    assert RateLimitSignal.from_headers({"Content-Type": "application/json"}) is None
