"""Braze.verify_members: the exact /users/export/ids payloads, reading the answer back to refs,
and the simulator's export endpoint (and its knob that drops a share of adds) over real HTTP."""

from typing import Any

import pytest
import requests

from connections.partners.base import Recipient
from connections.partners.braze import Braze
from connections.partners.braze.config import BrazeConfig
from connections.partners.braze.export import build_export_payloads, verified_refs
from connections.partners.http import PartnerError
from connections.sandbox import DEMO_BRAZE_KEY
from connections.sandbox.server import SandboxServer

LABEL = "churn_risk_q3"
TIMEOUT = 5


def _braze(url: str, secret: str = DEMO_BRAZE_KEY, **config: Any) -> Braze:
    return Braze(BrazeConfig(instance="custom", custom_endpoint=url, **config), secret)


def _ext(ref: int) -> Recipient:
    return Recipient(ref=ref, identifier_type="external_id", identifier=f"u-{ref}")


def _track(sandbox: SandboxServer, objects: list[dict[str, Any]]) -> None:
    requests.post(
        f"{sandbox.url}/users/track",
        json={"attributes": objects},
        headers={"Authorization": f"Bearer {DEMO_BRAZE_KEY}"},
        timeout=TIMEOUT,
    ).raise_for_status()


def _export(sandbox: SandboxServer, body: Any, key: str = DEMO_BRAZE_KEY) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/users/export/ids",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=TIMEOUT,
    )


def _control(sandbox: SandboxServer, route: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{sandbox.url}/_sandbox/{route}", json=body, timeout=TIMEOUT)


# The exact payload, no HTTP.


def test_export_payloads_carry_50_identifiers_each_with_the_fields_to_export():
    recipients = [_ext(ref) for ref in range(120)]
    payloads = list(build_export_payloads(recipients, default_alias_label=""))
    assert [len(body["external_ids"]) for body, _ in payloads] == [50, 50, 20]
    body, refs = payloads[0]
    assert body == {
        "external_ids": [f"u-{ref}" for ref in range(50)],
        "fields_to_export": ["external_id", "user_aliases", "braze_id", "custom_attributes"],
    }
    assert refs[("external_id", "u-7")] == [7]


def test_export_payload_addresses_aliases_and_braze_ids_as_they_were_sent():
    recipients = [
        Recipient(1, "user_alias", "dev-1", "device_id"),
        Recipient(2, "user_alias", "dev-2"),  # the connection's alias label
        Recipient(3, "braze_id", "b-3"),
    ]
    [(body, refs)] = build_export_payloads(recipients, default_alias_label="adid")
    assert body["user_aliases"] == [
        {"alias_name": "dev-1", "alias_label": "device_id"},
        {"alias_name": "dev-2", "alias_label": "adid"},
    ]
    assert body["braze_ids"] == ["b-3"]
    assert "external_ids" not in body
    assert refs[("user_alias", "adid\x00dev-2")] == [2]


def _user(external_id: str, **attributes: Any) -> dict[str, Any]:
    return {"external_id": external_id, "custom_attributes": attributes}


@pytest.mark.parametrize(
    ("mode", "attributes", "verified"),
    [
        ("array", {"cohorts": ["other", LABEL]}, True),
        ("array", {"cohorts": ["other"]}, False),
        ("array", {f"In {LABEL}": True}, False),
        ("boolean", {f"In {LABEL}": True}, True),
        ("boolean", {f"In {LABEL}": False}, False),
        ("boolean", {f"In {LABEL}": "true"}, False),
        ("both", {"cohorts": [LABEL], f"In {LABEL}": True}, True),
        ("both", {"cohorts": [LABEL]}, False),
    ],
)
def test_a_profile_is_verified_only_when_it_shows_the_membership_its_mode_writes(
    mode, attributes, verified
):
    [(_, refs)] = build_export_payloads([_ext(1)], default_alias_label="")
    body = {"message": "success", "users": [_user("u-1", **attributes)], "invalid_user_ids": []}
    found = verified_refs(body, refs, mode=mode, array_attribute="cohorts", cohort_label=LABEL)
    assert found == ({1} if verified else set())


def test_profiles_braze_does_not_know_are_not_verified():
    [(_, refs)] = build_export_payloads([_ext(1), _ext(2)], default_alias_label="")
    body = {
        "message": "success",
        "users": [_user("u-1", cohorts=[LABEL])],
        "invalid_user_ids": ["u-2"],
    }
    found = verified_refs(body, refs, mode="array", array_attribute="cohorts", cohort_label=LABEL)
    assert found == {1}


def test_an_alias_profile_is_matched_by_its_alias():
    [(_, refs)] = build_export_payloads(
        [Recipient(5, "user_alias", "dev-5", "device_id")], default_alias_label=""
    )
    user = {
        "braze_id": "b-9",
        "user_aliases": [{"alias_name": "dev-5", "alias_label": "device_id"}],
        "custom_attributes": {"cohorts": [LABEL]},
    }
    found = verified_refs(
        {"users": [user]}, refs, mode="array", array_attribute="cohorts", cohort_label=LABEL
    )
    assert found == {5}


# The simulator's export endpoint, over real HTTP.


def test_simulator_exports_known_profiles_and_lists_unknown_ids(sandbox):
    _track(sandbox, [{"external_id": "u-1", "_update_existing_only": False, "c": {"add": ["x"]}}])
    response = _export(
        sandbox, {"external_ids": ["u-1", "nobody"], "fields_to_export": ["custom_attributes"]}
    )
    assert response.status_code == 201
    assert response.json() == {
        "users": [{"custom_attributes": {"c": ["x"]}}],
        "invalid_user_ids": ["nobody"],
        "message": "success",
    }
    assert "X-RateLimit-Remaining" in response.headers


def test_simulator_export_refuses_more_than_50_ids_and_a_missing_fields_to_export(sandbox):
    too_many = _export(
        sandbox,
        {"external_ids": [f"u-{n}" for n in range(51)], "fields_to_export": ["external_id"]},
    )
    assert too_many.status_code == 400 and "50" in too_many.json()["message"]
    no_fields = _export(sandbox, {"external_ids": ["u-1"]})
    assert no_fields.status_code == 400 and "fields_to_export" in no_fields.json()["message"]


def test_simulator_export_needs_the_export_permission(sandbox):
    _control(sandbox, "braze/keys", {"key": "track-only", "permissions": ["users.track"]})
    response = _export(
        sandbox, {"external_ids": ["u-1"], "fields_to_export": ["external_id"]}, key="track-only"
    )
    assert response.status_code == 403
    assert _export(sandbox, {}, key="made-up").status_code == 401


def test_simulator_drops_the_configured_share_of_adds_the_same_way_every_time(sandbox):
    assert (
        _control(sandbox, "config", {"braze_drop_adds_pct": 3}).json()["braze_drop_adds_pct"] == 3
    )
    members = [f"m-{n}" for n in range(1000)]
    for start in range(0, 1000, 75):
        _track(
            sandbox,
            [
                {"external_id": m, "_update_existing_only": False, "c": {"add": [LABEL]}}
                for m in members[start : start + 75]
            ],
        )
    dropped = requests.get(f"{sandbox.url}/_sandbox/braze/dropped", timeout=TIMEOUT).json()
    dropped_keys = {item["identifier"] for item in dropped["dropped"]}
    assert 10 <= len(dropped_keys) <= 50  # about 3 % of 1,000, by a hash of each member
    profiles = requests.get(f"{sandbox.url}/_sandbox/braze/profiles", timeout=TIMEOUT).json()
    assert len(profiles["profiles"]) == 1000 - len(dropped_keys)
    assert not dropped_keys & set(profiles["profiles"])


def test_simulator_refuses_a_drop_share_outside_0_to_100(sandbox):
    assert _control(sandbox, "config", {"braze_drop_adds_pct": 101}).status_code == 400
    assert _control(sandbox, "config", {"braze_drop_adds_pct": True}).status_code == 400


# Braze.verify_members against the simulator.


def test_verify_members_reads_back_every_mode_and_alias(sandbox):
    _track(
        sandbox,
        [
            {"external_id": "u-1", "_update_existing_only": False, "cohorts": {"add": [LABEL]}},
            {"external_id": "u-2", "_update_existing_only": False, "cohorts": {"add": ["other"]}},
            {
                "user_alias": {"alias_name": "dev-3", "alias_label": "device_id"},
                "_update_existing_only": False,
                "cohorts": {"add": [LABEL]},
            },
        ],
    )
    braze = _braze(sandbox.url, array_attribute="cohorts")
    recipients = [
        _ext(1),
        _ext(2),
        Recipient(3, "user_alias", "dev-3", "device_id"),
        _ext(4),  # no profile at all
    ]
    assert braze.verify_members(cohort_label=LABEL, recipients=recipients, options={}) == {1, 3}
    assert (
        braze.verify_members(
            cohort_label=LABEL, recipients=recipients, options={"membership_mode": "boolean"}
        )
        == set()
    )


def test_verify_members_of_120_takes_three_export_requests(sandbox):
    braze = _braze(sandbox.url)
    braze.verify_members(
        cohort_label=LABEL, recipients=[_ext(ref) for ref in range(120)], options={}
    )
    stats = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=TIMEOUT).json()
    assert stats["requests"]["POST /users/export/ids"] == {"201": 3}


def test_a_key_without_the_export_permission_says_which_permission_is_missing(sandbox):
    _control(sandbox, "braze/keys", {"key": "track-only", "permissions": ["users.track"]})
    braze = _braze(sandbox.url, secret="track-only")
    with pytest.raises(PartnerError) as caught:
        braze.verify_members(cohort_label=LABEL, recipients=[_ext(1)], options={})
    assert caught.value.status == 403
    assert "users.export.ids" in caught.value.message
    assert "track-only" not in caught.value.message
