"""Braze REST simulator: `POST /users/track` and `POST /users/export/ids` (docs/partners/braze.md
§1 to §9, §10.4 and §11)."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, NamedTuple

from connections.sandbox.state import JsonDict, SandboxState

Response = tuple[int, dict[str, str], JsonDict]

USERS_TRACK = "/users/track"
USERS_EXPORT_IDS = "/users/export/ids"
# Per export request: external ids and user aliases together (device ids, emails: one).
EXPORT_MAX_IDS = 50
EXPORT_FIELDS = frozenset({"external_id", "user_aliases", "braze_id", "custom_attributes"})
MAX_STRING = 255
INPUT_ARRAYS = ("attributes", "events", "purchases")
# Fields of an attribute object that identify or steer the update rather than being attributes.
NON_ATTRIBUTE_FIELDS = frozenset(
    {"external_id", "user_alias", "braze_id", "_update_existing_only", "push_token_import"}
)
NO_DATA_MESSAGE = (
    "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
)

INVALID_OBJECTS_MESSAGE = "Every object in the request was invalid"


class Identity(NamedTuple):
    key: str  # profile key: "external_id:<v>", "alias:<label>:<name>", "braze_id:<v>", ...
    kind: str


def owns(path: str) -> bool:
    return path == "/users" or path.startswith("/users/")


def handle(
    state: SandboxState, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> Response:
    """Answer one Braze request; every response carries the X-RateLimit-* headers."""
    if path == USERS_EXPORT_IDS and method == "POST":
        return _export_ids(state, headers, body)
    if path != USERS_TRACK:
        return _with_rate(state, 404, {"message": "Not Found"}, consume=False)
    if method != "POST":
        return _with_rate(state, 405, {"message": "Method Not Allowed"}, consume=False)
    latency = state.latency_seconds("braze")
    if latency:
        time.sleep(latency)
    verdict = state.take_braze_token()
    rate_headers = verdict.headers()
    fault = state.pop_fault("braze")
    if fault is not None:
        return fault, rate_headers, {"message": _fault_message(fault)}
    if not verdict.allowed:
        return 429, rate_headers, {"message": "Rate limit exceeded"}
    status, payload = _users_track(state, headers, body)
    return status, rate_headers, payload


def _with_rate(state: SandboxState, status: int, payload: JsonDict, consume: bool) -> Response:
    return status, state.take_braze_token(consume).headers(), payload


def _fault_message(status: int) -> str:
    if status == 429:
        return "Rate limit exceeded"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Injected fault"


def _refused_key(
    state: SandboxState, headers: Mapping[str, str], permission: str
) -> tuple[int, JsonDict] | None:
    """401 or 403 when the Bearer key is unknown or lacks `permission`; None when it may."""
    scheme, _, key = headers.get("authorization", "").partition(" ")
    permissions = state.braze_key_permissions(key.strip()) if scheme.lower() == "bearer" else None
    if permissions is None:
        # Never echo the key back: error bodies end up in logs.
        return 401, {"message": "Invalid API key"}
    if permission not in permissions:
        return 403, {"message": "Access Denied"}
    return None


def _users_track(
    state: SandboxState, headers: Mapping[str, str], body: bytes
) -> tuple[int, JsonDict]:
    refused = _refused_key(state, headers, "users.track")
    if refused is not None:
        return refused

    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return 400, {"message": "Request body must be valid JSON"}
    if not isinstance(payload, dict):
        return 400, {"message": "Request body must be a JSON object"}
    arrays: dict[str, list[Any]] = {}
    for name in INPUT_ARRAYS:
        value = payload.get(name)
        if value is None:
            continue
        if not isinstance(value, list):
            return 400, {"message": f"'{name}' must be an array"}
        arrays[name] = value
    total = sum(len(items) for items in arrays.values())
    if total == 0:
        return 400, {"message": NO_DATA_MESSAGE}
    if total > state.braze_object_cap:
        return 400, {"message": "Max Input Length Exceeded"}

    result: JsonDict = {"message": "success"}
    errors: list[JsonDict] = []
    with state.lock:
        for name, items in arrays.items():
            processed = 0
            for index, obj in enumerate(items):
                if name == "attributes":
                    error = _apply_attributes(state, obj, index)
                else:
                    error = _record_event(state, name, obj)
                if error is None:
                    processed += 1
                else:
                    errors.append({"type": error, "input_array": name, "index": index})
            result[f"{name}_processed"] = processed
    if errors and len(errors) == total:
        # Not one object was valid: Braze refuses the request as a whole, with the same
        # per-object errors (nothing was applied).
        return 400, {"message": INVALID_OBJECTS_MESSAGE, "errors": errors}
    if errors:
        result["errors"] = errors
    return 201, result


def _identify(obj: JsonDict) -> Identity | str:
    """The object's profile identity, or the error text when it has no usable identifier."""
    if "external_id" in obj:
        value = obj["external_id"]
        if not isinstance(value, str) or not value:
            return "'external_id' must be a non-empty string"
        return Identity(f"external_id:{value}", "external_id")
    if "user_alias" in obj:
        alias = obj["user_alias"]
        if (
            not isinstance(alias, dict)
            or not isinstance(alias.get("alias_name"), str)
            or not isinstance(alias.get("alias_label"), str)
            or not alias["alias_name"]
            or not alias["alias_label"]
        ):
            return "'user_alias' must be an object with string 'alias_name' and 'alias_label'"
        return Identity(f"alias:{alias['alias_label']}:{alias['alias_name']}", "user_alias")
    # Email wins over phone when both are present.
    for kind in ("braze_id", "email", "phone"):
        if kind in obj:
            value = obj[kind]
            if not isinstance(value, str) or not value:
                return f"'{kind}' must be a non-empty string"
            return Identity(f"{kind}:{value}", kind)
    return (
        "Missing identifier: one of external_id, user_alias, braze_id, email or phone is required"
    )


def _apply_attributes(state: SandboxState, obj: Any, index: int) -> str | None:
    """Validate then apply one attribute object (caller holds the lock); error text on failure."""
    if not isinstance(obj, dict):
        return "Attribute object must be a JSON object"
    identity = _identify(obj)
    if isinstance(identity, str):
        return identity
    if identity.key in state.braze_rejections:
        return state.braze_rejections[identity.key]
    update_only = obj.get("_update_existing_only", identity.kind == "user_alias")
    if not isinstance(update_only, bool):
        return "'_update_existing_only' must be a boolean"
    if identity.kind == "braze_id":
        # Braze mints braze_ids itself, so an unknown one can never create a profile.
        update_only = True
    updates = {key: value for key, value in obj.items() if key not in NON_ATTRIBUTE_FIELDS}
    for key, value in updates.items():
        error = _validate_attribute(key, value)
        if error is not None:
            return error

    if _dropped(state, identity.key, updates):
        # Answered as applied, applied to nobody: what verification is there to notice.
        state.braze_dropped.append({"identifier": identity.key, "index": index})
        return None
    profile = state.braze_profiles.get(identity.key)
    if profile is None and update_only:
        # Braze accepts and counts these but applies them to nobody.
        state.braze_skipped.append(
            {"identifier": identity.key, "index": index, "reason": "profile does not exist"}
        )
        return None
    # Applied to a copy first (each value is replaced, never changed in place), so an object
    # refused for its arrays leaves the profile as it was.
    updated = dict(profile or {})
    for key, value in updates.items():
        _apply_value(updated, key, value)
    error = _hold_arrays_to_the_cap(state, updated, updates)
    if error is not None:
        return error
    state.braze_profiles[identity.key] = updated
    return None


def _hold_arrays_to_the_cap(
    state: SandboxState, profile: JsonDict, updates: JsonDict
) -> str | None:
    """Braze keeps at most the cap's number of values in an array (docs/partners/braze.md §9):
    past it the oldest are dropped, or, with the `braze_array_overflow` knob at "refuse", the
    object is refused (its error text returned)."""
    cap = state.braze_array_cap
    for key in updates:
        values = profile.get(key)
        if not isinstance(values, list) or len(values) <= cap:
            continue
        if state.braze_array_overflow == "refuse":
            return f"'{key}' would hold more than the array maximum of {cap} values"
        profile[key] = values[len(values) - cap :]
    return None


def _dropped(state: SandboxState, key: str, updates: JsonDict) -> bool:
    """Whether this add falls in the share the simulator is set to drop: decided by a hash of
    the profile key, so the same members are dropped on every run and test."""
    if not state.braze_drop_adds_pct:
        return False
    adds = any(
        value is True or (isinstance(value, dict) and bool(value.get("add")))
        for value in updates.values()
    )
    return adds and zlib.crc32(key.encode()) % 10_000 < state.braze_drop_adds_pct * 100


def _export_ids(state: SandboxState, headers: Mapping[str, str], body: bytes) -> Response:
    """`/users/export/ids`: the profiles asked for, by external id, alias or braze_id, with the
    fields asked for; identifiers Braze does not know come back in `invalid_user_ids`."""
    latency = state.latency_seconds("braze")
    if latency:
        time.sleep(latency)
    verdict = state.take_braze_export_token()
    rate_headers = verdict.headers()
    fault = state.pop_fault("braze")
    if fault is not None:
        return fault, rate_headers, {"message": _fault_message(fault)}
    if not verdict.allowed:
        return 429, rate_headers, {"message": "Rate limit exceeded"}
    refused = _refused_key(state, headers, "users.export.ids")
    if refused is not None:
        return refused[0], rate_headers, refused[1]
    status, payload = _export_answer(state, body)
    return status, rate_headers, payload


def _export_keys(payload: JsonDict) -> list[tuple[str, str]] | str:
    """(profile key, identifier as asked) for each identifier, or the error text."""
    keys: list[tuple[str, str]] = []
    for field, kind in (("external_ids", "external_id"), ("braze_ids", "braze_id")):
        values = payload.get(field, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            return f"'{field}' must be an array of non-empty strings"
        keys.extend((f"{kind}:{value}", value) for value in values)
    aliases = payload.get("user_aliases", [])
    if not isinstance(aliases, list):
        return "'user_aliases' must be an array"
    for alias in aliases:
        identity = _identify({"user_alias": alias})
        if isinstance(identity, str):
            return identity
        keys.append((identity.key, f"{alias['alias_label']}:{alias['alias_name']}"))
    return keys


def _export_answer(state: SandboxState, body: bytes) -> tuple[int, JsonDict]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return 400, {"message": "Request body must be valid JSON"}
    if not isinstance(payload, dict):
        return 400, {"message": "Request body must be a JSON object"}
    fields = payload.get("fields_to_export")
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        # Required on workspaces onboarded since August 2024.
        return 400, {"message": "'fields_to_export' must be a non-empty array of field names"}
    keys = _export_keys(payload)
    if isinstance(keys, str):
        return 400, {"message": keys}
    if not keys:
        return 400, {"message": "Provide external_ids, user_aliases or braze_ids"}
    if len(keys) > EXPORT_MAX_IDS:
        return 400, {"message": f"At most {EXPORT_MAX_IDS} identifiers per request"}
    users: list[JsonDict] = []
    invalid: list[str] = []
    with state.lock:
        for key, asked in keys:
            profile = state.braze_profiles.get(key)
            if profile is None:
                invalid.append(asked)
            else:
                users.append(_exported_user(key, profile, set(fields)))
    return 201, {"users": users, "invalid_user_ids": invalid, "message": "success"}


def _exported_user(key: str, profile: JsonDict, fields: set[str]) -> JsonDict:
    kind, _, value = key.partition(":")
    user: JsonDict = {}
    if kind == "external_id" and "external_id" in fields:
        user["external_id"] = value
    if kind == "braze_id" and "braze_id" in fields:
        user["braze_id"] = value
    if kind == "alias" and "user_aliases" in fields:
        label, _, name = value.partition(":")
        user["user_aliases"] = [{"alias_name": name, "alias_label": label}]
    if "custom_attributes" in fields:
        user["custom_attributes"] = json.loads(json.dumps(profile))
    return user


def _validate_attribute(key: str, value: Any) -> str | None:
    if not key:
        return "Attribute names must not be empty"
    if len(key) > MAX_STRING:
        return f"Attribute names must be at most {MAX_STRING} characters"
    if isinstance(value, str) and len(value) > MAX_STRING:
        return f"'{key}' must be at most {MAX_STRING} characters"
    if isinstance(value, list) and _has_long_string(value):
        return f"'{key}' values must be at most {MAX_STRING} characters"
    if isinstance(value, dict) and value and set(value) <= {"add", "remove"}:
        for op_values in value.values():
            if not isinstance(op_values, list):
                return f"'{key}' add/remove values must be arrays"
            if _has_long_string(op_values):
                return f"'{key}' values must be at most {MAX_STRING} characters"
    if isinstance(value, dict) and set(value) == {"inc"}:
        step = value["inc"]
        if not isinstance(step, int) or isinstance(step, bool):
            return f"'{key}' increment must be an integer"
    return None


def _has_long_string(values: list[Any]) -> bool:
    return any(isinstance(item, str) and len(item) > MAX_STRING for item in values)


def _apply_value(profile: JsonDict, key: str, value: Any) -> None:
    if value is None:
        profile.pop(key, None)
    elif isinstance(value, dict) and value and set(value) <= {"add", "remove"}:
        current = profile.get(key)
        array = list(current) if isinstance(current, list) else []
        for item in value.get("add", []):
            # Re-adding a present value moves it to the end.
            if item in array:
                array.remove(item)
            array.append(item)
        removed = value.get("remove", [])
        profile[key] = [item for item in array if item not in removed]
    elif isinstance(value, dict) and set(value) == {"inc"}:
        current = profile.get(key)
        start = current if isinstance(current, int) and not isinstance(current, bool) else 0
        profile[key] = start + value["inc"]
    elif isinstance(value, list):
        unique: list[Any] = []
        for item in value:
            if item not in unique:
                unique.append(item)
        profile[key] = unique
    else:
        profile[key] = value


def _record_event(state: SandboxState, array: str, obj: Any) -> str | None:
    """Validate one event or purchase and log it (caller holds the lock); error text on failure."""
    if not isinstance(obj, dict):
        return f"{array[:-1].capitalize()} object must be a JSON object"
    identity = _identify(obj)
    if isinstance(identity, str):
        return identity
    if not isinstance(obj.get("time"), str) or not obj["time"]:
        return "'time' must be an ISO-8601 string"
    if array == "events":
        name = obj.get("name")
        if not isinstance(name, str) or not name or len(name) > MAX_STRING:
            return f"'name' must be a non-empty string of at most {MAX_STRING} characters"
    else:
        product = obj.get("product_id")
        if not isinstance(product, str) or not product or len(product) > MAX_STRING:
            return f"'product_id' must be a non-empty string of at most {MAX_STRING} characters"
        currency = obj.get("currency")
        if not isinstance(currency, str) or len(currency) != 3:
            return "'currency' must be a three-letter ISO-4217 code"
        price = obj.get("price")
        if not isinstance(price, int | float) or isinstance(price, bool):
            return "'price' must be a number"
    state.braze_events.append({"array": array, "identifier": identity.key, "object": dict(obj)})
    return None
