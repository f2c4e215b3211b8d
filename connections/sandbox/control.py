"""The sandbox's own JSON control and read API under `/_sandbox/`, for tests and local setups."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from connections.partners.appsflyer.simulator import new_import_key
from connections.sandbox.state import (
    ARRAY_OVERFLOWS,
    PARTNERS,
    PLATFORMS,
    JsonDict,
    SandboxState,
)

Response = tuple[int, dict[str, str], JsonDict]

PREFIX = "/_sandbox"


class BadRequest(Exception):
    pass


def owns(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def handle(
    state: SandboxState, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> Response:
    route = path[len(PREFIX) :]
    try:
        if method == "GET":
            if route in _GET_ROUTES:
                return 200, {}, _GET_ROUTES[route](state)
            for prefix, reader in _GET_PREFIXES:
                if route.startswith(prefix) and len(route) > len(prefix):
                    return reader(state, unquote(route[len(prefix) :]))
        elif method == "POST" and route in _POST_ROUTES:
            return 200, {}, _POST_ROUTES[route](state, _json_object(body))
    except BadRequest as exc:
        return 400, {}, {"message": str(exc)}
    return 404, {}, {"message": "Not Found"}


def _json_object(body: bytes) -> JsonDict:
    if not body.strip():
        return {}
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("Request body must be valid JSON") from exc
    if not isinstance(payload, dict):
        raise BadRequest("Request body must be a JSON object")
    return payload


def _string(payload: JsonDict, name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{name}' must be a non-empty string")
    return value


def _positive_number(payload: JsonDict, name: str, integer: bool) -> Any:
    value = payload.get(name)
    if value is None:
        return None
    wrong_type = isinstance(value, bool) or not isinstance(value, int | float)
    if wrong_type or (integer and not isinstance(value, int)) or value <= 0:
        raise BadRequest(f"'{name}' must be a positive {'integer' if integer else 'number'}")
    return value


def _profile(state: SandboxState, key: str) -> Response:
    attributes = state.profile(key)
    if attributes is None:
        return 404, {}, {"message": "Profile not found", "identifier": key}
    return 200, {}, {"identifier": key, "attributes": attributes}


def _audience(state: SandboxState, import_key: str) -> Response:
    snapshot = state.audience(import_key)
    if snapshot is None:
        return 404, {}, {"message": "Audience not found", "import_key": import_key}
    return 200, {}, snapshot


def _reset(state: SandboxState, payload: JsonDict) -> JsonDict:
    state.reset()
    return {"status": "ok"}


def _add_braze_key(state: SandboxState, payload: JsonDict) -> JsonDict:
    key = _string(payload, "key")
    permissions = payload.get("permissions", ["users.track"])
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise BadRequest("'permissions' must be an array of strings")
    state.add_braze_key(key, permissions)
    return {"status": "ok", "permissions": sorted(set(permissions))}


def _revoke_braze_key(state: SandboxState, payload: JsonDict) -> JsonDict:
    state.revoke_braze_key(_string(payload, "key"))
    return {"status": "ok"}


def _add_appsflyer_token(state: SandboxState, payload: JsonDict) -> JsonDict:
    state.add_appsflyer_token(_string(payload, "token"))
    return {"status": "ok"}


def _revoke_appsflyer_token(state: SandboxState, payload: JsonDict) -> JsonDict:
    state.revoke_appsflyer_token(_string(payload, "token"))
    return {"status": "ok"}


def _faults(state: SandboxState, payload: JsonDict) -> JsonDict:
    partner = payload.get("partner")
    if partner not in PARTNERS:
        raise BadRequest(f"'partner' must be one of {', '.join(PARTNERS)}")
    statuses = payload.get("statuses")
    if statuses is not None and (
        not isinstance(statuses, list)
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in statuses)
        or not all(400 <= s <= 599 for s in statuses)
    ):
        raise BadRequest("'statuses' must be an array of HTTP error statuses (400-599)")
    latency = payload.get("latency_ms")
    if latency is not None and (
        isinstance(latency, bool) or not isinstance(latency, int) or latency < 0
    ):
        raise BadRequest("'latency_ms' must be a non-negative integer")
    state.set_faults(partner, statuses, latency)
    with state.lock:
        pending = list(state.fault_statuses[partner])
        latency_ms = state.latency_ms[partner]
    return {"partner": partner, "statuses": pending, "latency_ms": latency_ms}


def _reject_braze_objects(state: SandboxState, payload: JsonDict) -> JsonDict:
    keys = payload.get("identifiers")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        raise BadRequest("'identifiers' must be a non-empty array of profile keys")
    error = payload.get("error", "Invalid attribute object")
    if not isinstance(error, str) or not error:
        raise BadRequest("'error' must be a non-empty string")
    state.reject_braze_objects(keys, error)
    return {"status": "ok", "rejected": len(state.braze_rejections)}


def _percent(payload: JsonDict, name: str) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise BadRequest(f"'{name}' must be a number from 0 to 100")
    return float(value)


def _config(state: SandboxState, payload: JsonDict) -> JsonDict:
    known = {
        "braze_object_cap",
        "braze_rate_limit",
        "braze_rate_window",
        "appsflyer_max_devices",
        "braze_array_cap",
        "braze_array_overflow",
        "braze_drop_adds_pct",
        "appsflyer_rate_limit",
    }
    unknown = sorted(set(payload) - known)
    if unknown:
        raise BadRequest(f"Unknown config keys: {', '.join(unknown)}")
    overflow = payload.get("braze_array_overflow")
    if overflow is not None and overflow not in ARRAY_OVERFLOWS:
        raise BadRequest(f"'braze_array_overflow' must be one of {', '.join(ARRAY_OVERFLOWS)}")
    return state.configure(
        braze_object_cap=_positive_number(payload, "braze_object_cap", integer=True),
        braze_rate_limit=_positive_number(payload, "braze_rate_limit", integer=True),
        braze_rate_window=_positive_number(payload, "braze_rate_window", integer=False),
        appsflyer_max_devices=_positive_number(payload, "appsflyer_max_devices", integer=True),
        braze_array_cap=_positive_number(payload, "braze_array_cap", integer=True),
        braze_array_overflow=overflow,
        braze_drop_adds_pct=_percent(payload, "braze_drop_adds_pct"),
        appsflyer_rate_limit=_positive_number(payload, "appsflyer_rate_limit", integer=True),
    )


def _seed_audience(state: SandboxState, payload: JsonDict) -> JsonDict:
    """Create an audience with a caller-chosen import_key, bypassing the partner API."""
    name = _string(payload, "name")
    platform = payload.get("platform")
    if platform not in PLATFORMS:
        raise BadRequest("'platform' must be android or ios")
    import_key = payload.get("import_key") or new_import_key()
    if not isinstance(import_key, str):
        raise BadRequest("'import_key' must be a string")
    with state.lock:
        if import_key in state.audiences:
            raise BadRequest("An audience with this import_key already exists")
        if state.audience_name_taken(name):
            raise BadRequest("Audience name already exists")
        return state.create_audience(name, platform, import_key).snapshot()


def _seed_amplitude_cohort(state: SandboxState, payload: JsonDict) -> JsonDict:
    members = payload.get("members", [])
    if not isinstance(members, list) or not all(
        isinstance(m, dict) and all(isinstance(v, str | int | float) for v in m.values())
        for m in members
    ):
        raise BadRequest("'members' must be an array of objects of CSV column values")
    cohort_id = _string(payload, "id")
    if "/" in cohort_id:
        raise BadRequest("'id' must not contain '/'")
    append = payload.get("append", False)
    if not isinstance(append, bool):
        raise BadRequest("'append' must be a boolean")
    size = state.seed_amplitude_cohort(cohort_id, _string(payload, "name"), members, append=append)
    return {"status": "ok", "members": size}


def _amplitude_config(state: SandboxState, payload: JsonDict) -> JsonDict:
    integers = ("polls", "fail_jobs", "inline_bytes", "monthly_quota", "quota_status")
    unknown = sorted(set(payload) - {*integers, "link_seconds"})
    if unknown:
        raise BadRequest(f"Unknown Amplitude config keys: {', '.join(unknown)}")
    knobs: dict[str, int | float | None] = {}
    for name in integers:
        value = payload.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadRequest(f"'{name}' must be an integer")
        if value is not None and value < 0:
            raise BadRequest(f"'{name}' must not be negative")
        knobs[name] = value
    status = payload.get("quota_status")
    if status is not None and not 400 <= status <= 599:
        raise BadRequest("'quota_status' must be an HTTP error status (400-599)")
    knobs["link_seconds"] = _positive_number(payload, "link_seconds", integer=False)
    return state.configure_amplitude(**knobs)


def _expire_amplitude_links(state: SandboxState, payload: JsonDict) -> JsonDict:
    return {"expired": state.expire_amplitude_links()}


_GET_ROUTES: dict[str, Callable[[SandboxState], JsonDict]] = {
    "/health": lambda state: {"status": "ok"},
    "/stats": lambda state: state.stats(),
    "/config": lambda state: state.config(),
    "/braze/profiles": lambda state: {"profiles": state.profiles()},
    "/braze/skipped": lambda state: {"skipped": state.skipped_updates()},
    "/braze/dropped": lambda state: {"dropped": state.dropped_adds()},
    "/amplitude/config": lambda state: state.amplitude_config(),
    "/amplitude/usage": lambda state: state.amplitude_usage(),
}
_GET_PREFIXES: list[tuple[str, Callable[[SandboxState, str], Response]]] = [
    ("/braze/profiles/", _profile),
    ("/appsflyer/audiences/", _audience),
]
_POST_ROUTES: dict[str, Callable[[SandboxState, JsonDict], JsonDict]] = {
    "/reset": _reset,
    "/braze/keys": _add_braze_key,
    "/braze/keys/revoke": _revoke_braze_key,
    "/appsflyer/tokens": _add_appsflyer_token,
    "/appsflyer/tokens/revoke": _revoke_appsflyer_token,
    "/appsflyer/audiences": _seed_audience,
    "/faults": _faults,
    "/braze/rejections": _reject_braze_objects,
    "/config": _config,
    "/amplitude/cohorts": _seed_amplitude_cohort,
    "/amplitude/config": _amplitude_config,
    "/amplitude/links/expire": _expire_amplitude_links,
}
