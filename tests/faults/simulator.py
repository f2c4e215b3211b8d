"""The partner simulator as the fault tests drive and read it: its control API, a count of the
member writes it applied, faults placed at given requests, and a sleep that does not wait."""

import threading
from collections.abc import Callable
from typing import Any

import requests

from connections.partners.braze import simulator as braze_simulator

BATCH = 75  # Braze objects per /users/track request, the connection's default
ARRAY = "cohortsync_cohorts"


def sandbox_post(sandbox: Any, path: str, body: dict[str, Any]) -> None:
    requests.post(f"{sandbox.url}/_sandbox/{path}", json=body, timeout=5).raise_for_status()


def in_destination(sandbox: Any, cohort_name: str) -> set[str]:
    """The external ids whose Braze profile lists the cohort: what the partner holds."""
    profiles = requests.get(f"{sandbox.url}/_sandbox/braze/profiles", timeout=30).json()
    return {
        key.removeprefix("external_id:")
        for key, attributes in profiles["profiles"].items()
        if cohort_name in (attributes.get(ARRAY) or [])
    }


def track_answers(sandbox: Any) -> dict[int, int]:
    """How many /users/track answers the simulator gave, per HTTP status."""
    stats = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()["requests"]
    return {int(status): n for status, n in stats.get("POST /users/track", {}).items()}


class MemberWrites:
    """Counts the membership objects the simulator applied, wrapping its own per-object step:
    the member writes it received, whichever request carried them."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._apply = braze_simulator._apply_attributes

    def __call__(self, state: Any, obj: Any, index: int) -> str | None:
        error = self._apply(state, obj, index)
        if error is None:
            with self._lock:
                self.count += 1
        return error


class PartnerScript:
    """What the simulator does at given /users/track requests (1 = the first): answer an HTTP
    status as its injected fault (with its real rate-limit headers), or run an action first.

    It stands in for the simulator's fault queue, which only holds faults for the very next
    requests; a script places them in the middle of a run.
    """

    def __init__(self, steps: dict[int, int | Callable[[], None]]) -> None:
        self.steps = steps
        self.seen = 0
        self._lock = threading.Lock()

    def __call__(self, partner: str) -> int | None:
        with self._lock:
            self.seen += 1
            step = self.steps.get(self.seen)
        if callable(step):
            step()
            return None
        return step


class Sleeps:
    """The engine's sleep, recorded and not waited: backoff and bucket waits cost no time."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
