"""The `/users/track` body for a membership batch, and reading Braze's answer back to refs.

Pure functions, no I/O, so the exact payload is testable without HTTP.
"""

import logging
from collections.abc import Sequence
from typing import Any

from connections.partners.base import Recipient

logger = logging.getLogger(__name__)

IDENTIFIER_TYPES = ("external_id", "user_alias", "braze_id")


def membership_attributes(
    mode: str, array_attribute: str, cohort_label: str, *, member: bool
) -> dict[str, Any]:
    """The custom attributes that put a profile into (or take it out of) the cohort."""
    attributes: dict[str, Any] = {}
    if mode in ("array", "both"):
        # add/remove edits the array in place, so other cohorts written there are left alone.
        attributes[array_attribute] = {("add" if member else "remove"): [cohort_label]}
    if mode in ("boolean", "both"):
        attributes[f"In {cohort_label}"] = member
    if not attributes:
        raise ValueError(f"Unknown membership mode {mode!r}.")
    return attributes


def identifier_fields(recipient: Recipient, default_alias_label: str) -> dict[str, Any]:
    if recipient.identifier_type == "user_alias":
        label = recipient.alias_label or default_alias_label
        if not label:
            raise ValueError(f"Recipient {recipient.ref} is a user alias without an alias label.")
        return {"user_alias": {"alias_name": recipient.identifier, "alias_label": label}}
    if recipient.identifier_type in IDENTIFIER_TYPES:
        return {recipient.identifier_type: recipient.identifier}
    raise ValueError(
        f"Recipient {recipient.ref} has an identifier type Braze does not take: "
        f"{recipient.identifier_type!r}."
    )


def build_track_payload(
    *,
    cohort_label: str,
    add: Sequence[Recipient],
    remove: Sequence[Recipient],
    mode: str,
    array_attribute: str,
    update_existing_only: bool,
    default_alias_label: str,
) -> tuple[dict[str, Any], list[int]]:
    """The request body and the refs in `attributes` order (Braze's error indexes point there)."""
    objects: list[dict[str, Any]] = []
    refs: list[int] = []
    for recipients, member in ((add, True), (remove, False)):
        if not recipients:
            continue
        # The same for every object of the batch, made once and shared (nothing edits a body).
        membership = {
            # Always explicit: Braze's default differs by identifier (true for aliases). A
            # removal never creates a profile, whatever the connection says: Braze would make
            # an empty one for a member it does not know.
            "_update_existing_only": update_existing_only or not member,
            **membership_attributes(mode, array_attribute, cohort_label, member=member),
        }
        for recipient in recipients:
            objects.append({**identifier_fields(recipient, default_alias_label), **membership})
            refs.append(recipient.ref)
    return {"attributes": objects}, refs


def build_trait_payload(
    add: Sequence[Recipient], *, default_alias_label: str
) -> tuple[dict[str, Any], list[int]]:
    """A trait batch's body: one attributes object per member with the attributes it changes
    (values as given: number, boolean, string, ISO-8601 time, array; null removes one), and
    the refs in order. No `_update_existing_only`: Braze creates the profile of an external id
    it does not know yet, which is what a trait sync is for."""
    objects: list[dict[str, Any]] = []
    for recipient in add:
        if recipient.attributes is None:
            raise ValueError(f"Recipient {recipient.ref} of a trait batch has no attributes.")
        objects.append(
            {**identifier_fields(recipient, default_alias_label), **recipient.attributes}
        )
    return {"attributes": objects}, [recipient.ref for recipient in add]


def split_outcome(body: Any, refs: Sequence[int]) -> tuple[list[int], list[tuple[int, str]]]:
    """Accepted refs and (ref, reason) failures from a 201 body's non-fatal `errors`."""
    failed = _errors_by_index(body, len(refs))
    accepted = [ref for index, ref in enumerate(refs) if index not in failed]
    return accepted, [(refs[index], reason) for index, reason in sorted(failed.items())]


def object_errors(body: Any, refs: Sequence[int]) -> list[tuple[int, str]]:
    """(ref, reason) for each object Braze's `errors` point at by index, in request order: in
    a 201 they are the objects it skipped, in a 400 the ones that made it refuse the request."""
    failed = _errors_by_index(body, len(refs))
    return [(refs[index], reason) for index, reason in sorted(failed.items())]


def _errors_by_index(body: Any, sent: int) -> dict[int, str]:
    failed: dict[int, str] = {}
    errors = body.get("errors") if isinstance(body, dict) else None
    for item in errors if isinstance(errors, list) else []:
        if not isinstance(item, dict):
            continue
        reason = str(item.get("type") or item.get("message") or "rejected by Braze")
        index = item.get("index")
        in_attributes = item.get("input_array", "attributes") == "attributes"
        if (
            in_attributes
            and isinstance(index, int)
            and not isinstance(index, bool)
            and 0 <= index < sent
        ):
            failed.setdefault(index, reason)
        else:
            # Nobody to blame: failing every member for it would be wrong.
            logger.warning("Braze reported an error not tied to a sent object: %s", reason)
    return failed
