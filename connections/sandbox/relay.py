"""What one process of a multi-process simulator does with the requests the others must see.

The kernel hands each new connection to any of the processes (`SO_REUSEPORT`), so a control
request reaches one of them. What it sets (keys, latency, limits, a reset, seeded audiences)
must hold in all: the process applies it, then relays it to each sibling's private address.
What is read back is gathered from every process: request counts are summed; partner data
(Braze profiles, AppsFlyer audiences) stays with the process that applied the write, so reads
merge it, and a profile or audience written through several processes, whose true state none
of them holds, is refused with 409 rather than shown wrong. Rate limits are not relayed: they
live in shared memory (connections/sandbox/shared.py).

What cannot be kept apart this way is refused with a clear error: a queue of injected statuses
(each process would answer them all) and Amplitude's download (its export jobs and links
outlive the request that made them). Tests that need them use the single-process simulator.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping, Sequence

from connections.partners import PARTNERS
from connections.sandbox import control
from connections.sandbox.state import JsonDict, SandboxState

Response = tuple[int, dict[str, str], JsonDict]

RELAY_TIMEOUT_SECONDS = 30
APPSFLYER_AUDIENCE_API = "/api/audiences-external-api/audience"
SINGLE_PROCESS_ONLY = (
    "needs the single-process simulator (partner_sandbox without --processes): "
    "each process would keep its own copy"
)


def refusal(path: str, body: bytes) -> Response | None:
    """409 for what a multi-process simulator cannot keep consistent; None when it can."""
    if path.startswith(control.PREFIX + "/amplitude") or PARTNERS["amplitude"].simulator.owns(path):
        return 409, {}, {"message": f"Amplitude's download {SINGLE_PROCESS_ONLY}"}
    if path == control.PREFIX + "/faults":
        try:
            statuses = json.loads(body or b"{}").get("statuses")
        except (ValueError, AttributeError):
            return None  # control.handle answers the 400
        if statuses:
            return 409, {}, {"message": f"A queue of injected statuses {SINGLE_PROCESS_ONLY}"}
    return None


def control_request(
    state: SandboxState,
    peers: Sequence[str],
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
) -> Response:
    """A `/_sandbox/` request in a multi-process simulator: applied here and relayed to every
    sibling (POST), or answered from every process's state together (GET). Siblings are
    reached at their private addresses, where they answer from their own state alone."""
    local = control.handle(state, method, path, headers, body)
    if method != "GET":
        if local[0] == 200:
            relayed_body = body
            if path == control.PREFIX + "/appsflyer/audiences":
                # The import key may have been drawn here: every process must hold the same.
                relayed_body = _with_import_key(body, local[2]["import_key"])
            for peer in peers:
                _relay(peer, method, path, relayed_body)
        return local
    answers = [local] + [_relay(peer, "GET", path, b"") for peer in peers]
    return _merge(path[len(control.PREFIX) :], answers)


def share_partner_write(
    peers: Sequence[str], method: str, path: str, body: bytes, response: Response
) -> None:
    """An AppsFlyer audience created through its API is known to every process before the
    creator hears back, so the imports that follow may reach any of them."""
    if path != APPSFLYER_AUDIENCE_API or method != "POST" or response[0] != 200:
        return
    asked = json.loads(body)
    seed = json.dumps(
        {
            "name": asked["audience_name"],
            "platform": asked["platform"],
            "import_key": response[2]["message"]["import_key"],
        }
    ).encode()
    for peer in peers:
        _relay(peer, "POST", control.PREFIX + "/appsflyer/audiences", seed)


def _with_import_key(body: bytes, import_key: str) -> bytes:
    payload = json.loads(body)
    payload["import_key"] = import_key
    return json.dumps(payload).encode()


def _relay(peer: str, method: str, path: str, body: bytes) -> Response:
    """The sibling's answer; anything but 200 (or 404 on a read) is an error of the cluster."""
    host, _, port = peer.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=RELAY_TIMEOUT_SECONDS)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        status, payload = answer.status, json.loads(answer.read() or b"{}")
    finally:
        connection.close()
    if status != 200 and not (method == "GET" and status == 404):
        raise RuntimeError(f"Sandbox process at {peer} answered {status} to {method} {path}")
    return status, {}, payload


def _merge(route: str, answers: list[Response]) -> Response:
    payloads = [payload for status, _, payload in answers if status == 200]
    if route == "/stats":
        return 200, {}, _summed_stats(payloads)
    if route == "/braze/profiles":
        merged: JsonDict = {}
        for payload in payloads:
            for key, attributes in payload["profiles"].items():
                if key in merged:
                    return _split(f"Profile {key}")
                merged[key] = attributes
        return 200, {}, {"profiles": merged}
    if route in ("/braze/skipped", "/braze/dropped"):
        name = route.rsplit("/", 1)[1]
        return 200, {}, {name: [item for payload in payloads for item in payload[name]]}
    if route.startswith("/braze/profiles/") and len(payloads) > 1:
        return _split(f"Profile {payloads[0]['identifier']}")
    if route.startswith("/appsflyer/audiences/") and payloads:
        holding = [payload for payload in payloads if payload["member_count"]]
        if len(holding) > 1:
            return _split(f"Audience {payloads[0]['import_key']}")
        return 200, {}, (holding or payloads)[0]
    if payloads:
        # Settings and health are the same in every process (writes are relayed to all).
        return 200, {}, payloads[0]
    return answers[0]


def _summed_stats(payloads: list[JsonDict]) -> JsonDict:
    requests: dict[str, dict[str, int]] = {}
    for payload in payloads:
        for endpoint, per_status in payload["requests"].items():
            totals = requests.setdefault(endpoint, {})
            for status, count in per_status.items():
                totals[status] = totals.get(status, 0) + count
    return {
        "requests": requests,
        "connections": sum(payload["connections"] for payload in payloads),
        # Requests each process answered: how evenly the kernel spread the connections.
        "processes": [
            sum(sum(c.values()) for c in payload["requests"].values()) for payload in payloads
        ],
    }


def _split(what: str) -> Response:
    return (
        409,
        {},
        {"message": f"{what} was written through several processes; {SINGLE_PROCESS_ONLY}"},
    )
