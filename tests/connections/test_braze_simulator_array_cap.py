"""The Braze simulator holds array attributes to a cap, as Braze documents (docs/partners/braze.md
§9): 25 values by default; an add past it drops the oldest, or, with the `braze_array_overflow`
knob at "refuse", the object is refused by index and the rest of the request applied."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connections.sandbox import DEMO_BRAZE_KEY
from connections.sandbox.server import SandboxServer

TIMEOUT = 5


@pytest.fixture
def sandbox():
    with SandboxServer() as server:
        yield server


def configure(sandbox: SandboxServer, **knobs: Any) -> requests.Response:
    return requests.post(f"{sandbox.url}/_sandbox/config", json=knobs, timeout=TIMEOUT)


def track(sandbox: SandboxServer, *objects: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(
        f"{sandbox.url}/users/track",
        json={"attributes": list(objects)},
        headers={"Authorization": f"Bearer {DEMO_BRAZE_KEY}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text
    return response.json()


def add(external_id: str, *values: str) -> dict[str, Any]:
    return {"external_id": external_id, "cohorts": {"add": list(values)}}


def array(sandbox: SandboxServer, external_id: str) -> list[str]:
    url = f"{sandbox.url}/_sandbox/braze/profiles/external_id:{external_id}"
    response = requests.get(url, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["attributes"]["cohorts"]


COHORTS = [f"Cohort {n:02d}" for n in range(1, 28)]


def test_the_cap_is_25_and_an_add_past_it_drops_the_oldest_values(sandbox):
    assert (
        requests.get(f"{sandbox.url}/_sandbox/config", timeout=TIMEOUT).json()["braze_array_cap"]
        == 25
    )
    for name in COHORTS[:25]:
        track(sandbox, add("u-1", name))
    assert array(sandbox, "u-1") == COHORTS[:25]

    body = track(sandbox, add("u-1", COHORTS[25]), add("u-1", COHORTS[26]))

    assert "errors" not in body and body["attributes_processed"] == 2
    assert array(sandbox, "u-1") == COHORTS[2:27]  # Cohort 01 and 02 are gone


def test_an_add_of_several_values_keeps_the_newest_ones(sandbox):
    configure(sandbox, braze_array_cap=3)
    track(sandbox, add("u-1", "a", "b"))
    track(sandbox, add("u-1", "c", "d", "e"))
    assert array(sandbox, "u-1") == ["c", "d", "e"]


def test_with_the_refuse_knob_an_overflowing_object_fails_and_the_rest_applies(sandbox):
    assert configure(sandbox, braze_array_cap=2, braze_array_overflow="refuse").status_code == 200
    track(sandbox, add("full", "a", "b"), add("room", "a"))

    body = track(
        sandbox,
        add("room", "b"),
        {**add("full", "c"), "tier": "gold"},
        add("new", "x"),
    )

    assert body["attributes_processed"] == 2
    assert body["errors"] == [
        {
            "type": "'cohorts' would hold more than the array maximum of 2 values",
            "input_array": "attributes",
            "index": 1,
        }
    ]
    assert array(sandbox, "room") == ["a", "b"]
    assert array(sandbox, "new") == ["x"]
    # The refused object changed nothing on its profile, its other attributes included.
    url = f"{sandbox.url}/_sandbox/braze/profiles/external_id:full"
    assert requests.get(url, timeout=TIMEOUT).json()["attributes"] == {"cohorts": ["a", "b"]}


def test_a_refused_object_for_an_unknown_profile_creates_none(sandbox):
    configure(sandbox, braze_array_cap=1, braze_array_overflow="refuse")
    response = requests.post(
        f"{sandbox.url}/users/track",
        json={"attributes": [add("ghost", "a", "b")]},
        headers={"Authorization": f"Bearer {DEMO_BRAZE_KEY}"},
        timeout=TIMEOUT,
    )
    # Its only object refused: Braze refuses the request whole, naming the object.
    assert response.status_code == 400
    assert [error["index"] for error in response.json()["errors"]] == [0]
    url = f"{sandbox.url}/_sandbox/braze/profiles/external_id:ghost"
    assert requests.get(url, timeout=TIMEOUT).status_code == 404


def test_removing_a_value_makes_room_again(sandbox):
    configure(sandbox, braze_array_cap=2, braze_array_overflow="refuse")
    track(sandbox, add("u-1", "a", "b"))
    track(sandbox, {"external_id": "u-1", "cohorts": {"remove": ["a"]}})
    assert "errors" not in track(sandbox, add("u-1", "c"))
    assert array(sandbox, "u-1") == ["b", "c"]


@pytest.mark.parametrize(
    "knobs",
    [
        {"braze_array_overflow": "drop"},
        {"braze_array_cap": 0},
        {"braze_array_cap": 30, "braze_array_overflow": "keep"},
    ],
)
def test_bad_knobs_are_refused_and_change_nothing(sandbox, knobs):
    response = configure(sandbox, **knobs)
    assert response.status_code == 400
    config = requests.get(f"{sandbox.url}/_sandbox/config", timeout=TIMEOUT).json()
    assert (config["braze_array_cap"], config["braze_array_overflow"]) == (25, "truncate")


def test_reset_restores_the_documented_default(sandbox):
    configure(sandbox, braze_array_cap=3, braze_array_overflow="refuse")
    requests.post(f"{sandbox.url}/_sandbox/reset", json={}, timeout=TIMEOUT)
    config = requests.get(f"{sandbox.url}/_sandbox/config", timeout=TIMEOUT).json()
    assert (config["braze_array_cap"], config["braze_array_overflow"]) == (25, "truncate")
