"""Audiences Import API v2 bodies for a membership batch, and reading AppsFlyer's 400s.

Pure functions, no I/O, so the exact payload is testable without HTTP.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connections.partners.base import Recipient

# Recipient identifier type → AppsFlyer device field. A member's external_id is the app's own
# user id, which AppsFlyer calls the customer user id (cuid).
DEVICE_FIELDS: dict[str, str] = {
    "gaid": "gaid",
    "oaid": "oaid",
    "idfv": "idfv",
    "external_id": "cuid",
    "cuid": "cuid",
    "amplitude_id": "amplitude_id",
    "braze_id": "braze_id",
}
# The "one of" lists in AppsFlyer's spec (docs/partners/appsflyer.md §4). A row without one of these
# makes AppsFlyer refuse the whole request, so such recipients are failed before sending.
# imei exists in the spec but members never carry it.
PLATFORM_FIELDS: dict[str, frozenset[str]] = {
    "android": frozenset({"gaid", "oaid", "cuid", "amplitude_id", "braze_id"}),
    "ios": frozenset({"idfv", "cuid", "amplitude_id", "braze_id"}),
}
# AppsFlyer leaves the number unpublished; its 400 says it: "Cannot process more than Y devices
# per request (n counted)".
TOO_MANY_DEVICES = re.compile(r"Cannot process more than (\d+) devices per request", re.IGNORECASE)


@dataclass(frozen=True)
class DeviceRows:
    """The device objects to send, the refs in the same order, and recipients refused locally."""

    devices: list[dict[str, str]]
    refs: list[int]
    refused: list[tuple[int, str]]


def device_field(recipient: Recipient, platform: str) -> str:
    """The device field this recipient goes in; ValueError with the reason when it cannot."""
    field = DEVICE_FIELDS.get(recipient.identifier_type)
    if field is None:
        raise ValueError(
            f"AppsFlyer does not take the identifier type {recipient.identifier_type!r}."
        )
    if field not in PLATFORM_FIELDS[platform]:
        accepted = ", ".join(sorted(PLATFORM_FIELDS[platform]))
        raise ValueError(
            f"An AppsFlyer {platform} audience does not accept {field}; it takes {accepted}."
        )
    if not recipient.identifier.strip():
        # An empty value counts as "missing a valid unique identifier" and fails the whole call.
        raise ValueError(f"The {field} value is empty.")
    return field


def device_rows(recipients: Sequence[Recipient], *, app_id: str, platform: str) -> DeviceRows:
    """One device object per recipient: app_id plus exactly one identifier.

    One identifier per row is what `remove` demands (more is a 400), and for `add` it keeps each
    member a single, predictable row in the audience.
    """
    devices: list[dict[str, str]] = []
    refs: list[int] = []
    refused: list[tuple[int, str]] = []
    for recipient in recipients:
        try:
            field = device_field(recipient, platform)
        except ValueError as exc:
            refused.append((recipient.ref, str(exc)))
            continue
        devices.append({"app_id": app_id, field: recipient.identifier})
        refs.append(recipient.ref)
    return DeviceRows(devices=devices, refs=refs, refused=refused)


def import_payload(
    *, import_key: str, platform: str, devices: Sequence[dict[str, str]]
) -> dict[str, Any]:
    """The body of `POST /api/audiences-import-api/v2/add` or `/remove`."""
    return {"import_key": import_key, "platform": platform, "devices": list(devices)}


def device_limit(message: str) -> int | None:
    """N from AppsFlyer's "Cannot process more than N devices per request", else None."""
    match = TOO_MANY_DEVICES.search(message)
    return int(match.group(1)) if match else None
