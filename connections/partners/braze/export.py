"""Reading membership back with `POST /users/export/ids` (docs/partners/braze.md §10.4): the
request bodies for a sample of members, and which of them Braze shows in the cohort.

Pure functions, no I/O, so the exact payload and the reading of an answer are testable without
HTTP.
"""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from connections.partners.base import Recipient
from connections.partners.braze.array_cap import ARRAY_MODES
from connections.partners.braze.payload import identifier_fields

# Braze takes up to 50 external ids or user aliases per export request.
IDS_PER_EXPORT = 50
# Required on workspaces onboarded since August 2024; asking only for these keeps it cheap.
FIELDS_TO_EXPORT = ["external_id", "user_aliases", "braze_id", "custom_attributes"]
BOOLEAN_MODES = ("boolean", "both")

# How a profile is found again in the answer: ("external_id", value), ("braze_id", value) or
# ("user_alias", "<label>\x00<name>").
Key = tuple[str, str]


def _alias_key(label: str, name: str) -> Key:
    return ("user_alias", f"{label}\x00{name}")


def recipient_key(recipient: Recipient, default_alias_label: str) -> Key:
    fields = identifier_fields(recipient, default_alias_label)
    if "user_alias" in fields:
        alias = fields["user_alias"]
        return _alias_key(alias["alias_label"], alias["alias_name"])
    kind, value = next(iter(fields.items()))
    return (kind, value)


def build_export_payloads(
    recipients: Sequence[Recipient], default_alias_label: str
) -> Iterator[tuple[dict[str, Any], dict[Key, list[int]]]]:
    """One body per IDS_PER_EXPORT recipients, with the refs each profile key stands for."""
    for start in range(0, len(recipients), IDS_PER_EXPORT):
        chunk = recipients[start : start + IDS_PER_EXPORT]
        body: dict[str, Any] = {}
        refs: dict[Key, list[int]] = {}
        for recipient in chunk:
            fields = identifier_fields(recipient, default_alias_label)
            kind, value = next(iter(fields.items()))
            plural = {"external_id": "external_ids", "user_alias": "user_aliases"}.get(
                kind, "braze_ids"
            )
            key = recipient_key(recipient, default_alias_label)
            if key not in refs:
                body.setdefault(plural, []).append(value)
            refs.setdefault(key, []).append(recipient.ref)
        body["fields_to_export"] = list(FIELDS_TO_EXPORT)
        yield body, refs


def user_keys(user: Mapping[str, Any]) -> set[Key]:
    """Every key an exported profile answers to."""
    keys: set[Key] = set()
    for kind in ("external_id", "braze_id"):
        value = user.get(kind)
        if isinstance(value, str) and value:
            keys.add((kind, value))
    aliases = user.get("user_aliases")
    for alias in aliases if isinstance(aliases, list) else []:
        if isinstance(alias, dict):
            label, name = alias.get("alias_label"), alias.get("alias_name")
            if isinstance(label, str) and isinstance(name, str):
                keys.add(_alias_key(label, name))
    return keys


def carries_membership(
    user: Mapping[str, Any], *, mode: str, array_attribute: str, cohort_label: str
) -> bool:
    """Whether the profile shows the cohort the way `mode` writes it (both ways for "both")."""
    attributes = user.get("custom_attributes")
    if not isinstance(attributes, dict):
        return False
    if mode in ARRAY_MODES:
        values = attributes.get(array_attribute)
        if not isinstance(values, list) or cohort_label not in values:
            return False
    if mode in BOOLEAN_MODES and attributes.get(f"In {cohort_label}") is not True:
        return False
    return mode in ARRAY_MODES or mode in BOOLEAN_MODES


def verified_refs(
    body: Any, refs: Mapping[Key, list[int]], *, mode: str, array_attribute: str, cohort_label: str
) -> set[int]:
    """The refs whose profile Braze returned carrying the membership. Profiles Braze does not
    know come back in `invalid_user_ids` or not at all: those refs are not verified."""
    users = body.get("users") if isinstance(body, dict) else None
    verified: set[int] = set()
    for user in users if isinstance(users, list) else []:
        if not isinstance(user, dict) or not carries_membership(
            user, mode=mode, array_attribute=array_attribute, cohort_label=cohort_label
        ):
            continue
        for key in user_keys(user) & refs.keys():
            verified.update(refs[key])
    return verified
