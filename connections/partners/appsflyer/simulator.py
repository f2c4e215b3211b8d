"""AppsFlyer simulator: Audiences Import API v2 and the bits of the audiences external API we use.

See docs/partners/appsflyer.md, and §9 for what the simulator does.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from connections.sandbox.state import PLATFORMS, Audience, JsonDict, Member, SandboxState

Response = tuple[int, dict[str, str], JsonDict]

IMPORT_PREFIX = "/api/audiences-import-api/v2/"
EXTERNAL_PREFIX = "/api/audiences-external-api"
IMPORT_ACTIONS = ("add", "remove", "overwrite")
DEVICE_FIELDS = frozenset(
    {
        "app_id",
        "idfv",
        "idfa",
        "gaid",
        "oaid",
        "imei",
        "cuid",
        "emails",
        "phone",
        "phone_e164",
        "braze_id",
        "amplitude_id",
    }
)
IDENTIFIER_FIELDS = DEVICE_FIELDS - {"app_id"}
PLATFORM_IDENTIFIERS = {
    "android": frozenset({"gaid", "oaid", "imei", "cuid", "braze_id", "amplitude_id"}),
    "ios": frozenset({"idfv", "cuid", "braze_id", "amplitude_id"}),
}
SUCCESS = {"message": "The request was successful"}


def owns(path: str) -> bool:
    return path.startswith(IMPORT_PREFIX) or path.startswith(EXTERNAL_PREFIX + "/")


def handle(
    state: SandboxState, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> Response:
    """Answer one AppsFlyer request. AppsFlyer sends no rate-limit headers, so neither do we."""
    if path.startswith(IMPORT_PREFIX) and path[len(IMPORT_PREFIX) :] in IMPORT_ACTIONS:
        expected_method = "POST"
    elif path == f"{EXTERNAL_PREFIX}/connections":
        expected_method = "GET"
    elif path == f"{EXTERNAL_PREFIX}/audience":
        expected_method = "POST"
    else:
        return 404, {}, {"message": "Not Found"}
    if method != expected_method:
        return 405, {"Allow": expected_method}, {"message": "Method Not Allowed"}

    latency = state.latency_seconds("appsflyer")
    if latency:
        time.sleep(latency)
    fault = state.pop_fault("appsflyer")
    if fault is not None:
        return fault, {}, {"message": _fault_message(fault)}
    if not state.take_appsflyer_token():
        # As AppsFlyer answers: no Retry-After, no X-RateLimit-* headers.
        return 429, {}, {"message": _fault_message(429)}
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not state.appsflyer_token_valid(token.strip()):
        return 403, {}, {"message": "Forbidden"}

    if expected_method == "GET":
        # No partner connections are modelled; this is the cheap authenticated "test" call.
        return 200, {}, {"connections": []}
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return 400, {}, {"message": "Request body must be valid JSON"}
    if not isinstance(payload, dict):
        return 400, {}, {"message": "Request body must be a JSON object"}
    if path == f"{EXTERNAL_PREFIX}/audience":
        status, result = _create_audience(state, payload)
    else:
        status, result = _import(state, path[len(IMPORT_PREFIX) :], payload)
    return status, {}, result


def _fault_message(status: int) -> str:
    if status == 429:
        return "Too many requests"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Injected fault"


def new_import_key() -> str:
    return secrets.token_hex(16)


def _create_audience(state: SandboxState, payload: JsonDict) -> tuple[int, JsonDict]:
    name = payload.get("audience_name")
    if not isinstance(name, str) or not 2 <= len(name) <= 100:
        return 400, {"message": "audience_name must be a string of 2 to 100 characters"}
    if payload.get("platform") not in PLATFORMS:
        return 400, {"error_code": 1000, "message": "Platform must be android or ios"}
    with state.lock:
        if state.audience_name_taken(name):
            return 400, {"error_code": 1001, "message": "Audience name already exists"}
        audience = state.create_audience(name, payload["platform"], new_import_key())
    return 200, {
        "message": {"audience_id": audience.audience_id, "import_key": audience.import_key}
    }


def _import(state: SandboxState, action: str, payload: JsonDict) -> tuple[int, JsonDict]:
    import_key = payload.get("import_key")
    if not isinstance(import_key, str) or not import_key:
        return 400, {"message": "import_key is required"}
    platform = payload.get("platform")
    if platform not in PLATFORMS:
        return 400, {"message": "platform must be 'android' or 'ios'"}
    devices = payload.get("devices")
    if not isinstance(devices, list):
        return 400, {"message": "devices must be an array of device objects"}
    if not devices:
        return 400, {"message": "The device list is empty"}
    limit = state.appsflyer_max_devices
    if len(devices) > limit:
        return 400, {
            "message": f"Cannot process more than {limit} devices per request "
            f"({len(devices)} counted)"
        }

    with state.lock:
        audience = state.audiences.get(import_key)
        if audience is None:
            return 400, {"message": "No audience matches this import_key"}
        if audience.platform != platform:
            return 400, {
                "message": f"The audience is already configured for platform {audience.platform}"
            }
        error = _validate_devices(devices, platform, action)
        if error is not None:
            return 400, {"message": error}
        members = [_member(device) for device in devices]
        _apply(audience, action, members)
    return 200, dict(SUCCESS)


def _validate_devices(devices: list[Any], platform: str, action: str) -> str | None:
    """The first documented 400 message that applies to these rows, or None when all are valid."""
    unreadable = missing_app_id = missing_identifier = several_identifiers = 0
    accepted = PLATFORM_IDENTIFIERS[platform]
    for device in devices:
        if not isinstance(device, dict) or any(
            not isinstance(device[name], str) for name in DEVICE_FIELDS & device.keys()
        ):
            unreadable += 1
            continue
        present = {name for name in DEVICE_FIELDS if device.get(name)}
        if "app_id" not in present:
            missing_app_id += 1
        if not present & accepted:
            missing_identifier += 1
        if action == "remove" and len(present & IDENTIFIER_FIELDS) > 1:
            several_identifiers += 1
    if unreadable:
        return f"{unreadable} rows contain an identifier that could not be understood"
    if missing_app_id:
        return f"{missing_app_id} rows are missing app_id"
    if missing_identifier:
        return f"{missing_identifier} rows are missing a valid unique identifier for {platform}"
    if several_identifiers:
        return f"{several_identifiers} rows contain more than one identifier; remove takes one"
    return None


def _member(device: Mapping[str, str]) -> Member:
    return frozenset(
        (name, value) for name, value in device.items() if name in DEVICE_FIELDS and value
    )


def _apply(audience: Audience, action: str, members: list[Member]) -> None:
    if action == "overwrite":
        audience.members = set(members)
    elif action == "add":
        audience.members.update(members)
    else:
        # A remove row is app_id plus one identifier: drop every member that carries both.
        targets = set(members)
        audience.members = {
            member for member in audience.members if not _matches_any(member, targets)
        }


def _matches_any(member: Member, targets: set[Member]) -> bool:
    app_ids = {item for item in member if item[0] == "app_id"}
    return any(frozenset({*app_ids, item}) in targets for item in member if item[0] != "app_id")
