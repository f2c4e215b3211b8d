"""What an Audiences Import API body shows on a run's page: the audience it names, its first
devices in full, the others counted, and their identifiers masked wherever AppsFlyer's answer
quotes them. The import key names the audience, not the account: it stays (the sync form shows
it too); the API token travels in a header and is never kept."""

from typing import Any

from connections.partners.redaction import RedactedRequest, sample_lists, sample_of

# A device object's field that names the app, not the device.
NOT_AN_IDENTIFIER = "app_id"


def identifiers_of(device: Any) -> set[str]:
    """The identifier values of a device object (one per device as cohortsync sends them)."""
    if not isinstance(device, dict):
        return set()
    return {
        value
        for name, value in device.items()
        if name != NOT_AN_IDENTIFIER and isinstance(value, str)
    }


def redact_import_request(body: Any, *, sample: int) -> RedactedRequest:
    """`{"import_key", "platform", "devices": [...]}` with its first `sample` devices; another
    body (an audience created) by the generic rule."""
    devices = body.get("devices") if isinstance(body, dict) else None
    if not isinstance(devices, list):
        return sample_lists(body, sample)
    kept, rest = sample_of(devices, sample, "devices")
    hidden = {value for device in rest for value in identifiers_of(device)}
    return RedactedRequest({**body, "devices": kept}, frozenset(hidden))
