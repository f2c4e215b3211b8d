"""What a `/users/track` body shows on a run's page: its first attribute objects in full, the
others counted, and their identifiers masked wherever Braze's answer quotes them (its per-object
errors point at objects by index, and a message may name the profile)."""

from typing import Any

from connections.partners.redaction import RedactedRequest, sample_lists, sample_of

# The fields of an attribute object that name its profile (docs/partners/braze.md §5).
IDENTIFYING_FIELDS = ("external_id", "braze_id", "email", "phone")


def identifiers_of(obj: Any) -> set[str]:
    """The values that name the profile an attribute object writes to."""
    if not isinstance(obj, dict):
        return set()
    found = {obj[name] for name in IDENTIFYING_FIELDS if isinstance(obj.get(name), str)}
    alias = obj.get("user_alias")
    if isinstance(alias, dict) and isinstance(alias.get("alias_name"), str):
        found.add(alias["alias_name"])
    return found


def redact_track_request(body: Any, *, sample: int) -> RedactedRequest:
    """`{"attributes": [...]}` cut to its first `sample` objects (so Braze's error indexes
    below `sample` still point at what is shown); anything else, cut by the generic rule."""
    objects = body.get("attributes") if isinstance(body, dict) else None
    if not isinstance(objects, list):
        return sample_lists(body, sample)
    kept, rest = sample_of(objects, sample, "objects")
    others = sample_lists(
        {key: value for key, value in body.items() if key != "attributes"}, sample
    )
    hidden = {value for obj in rest for value in identifiers_of(obj)} | others.hidden
    return RedactedRequest({"attributes": kept, **others.body}, frozenset(hidden))
