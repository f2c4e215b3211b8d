"""Validation of the Braze-compatible cohort-import payloads. Pure: no database, no I/O.

The parsers take the decoded JSON body and return a typed request, or raise PayloadError with the
message the partner gets in a 400. The wording follows Braze's where Braze documents one.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cohorts.membership import Identity
from cohorts.models import MAX_IDENTIFIER_LENGTH, IdType

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_IDENTIFIERS = 1000
MAX_NAME_LENGTH = 255
# Longer than any ISO-8601 time; keeps the parser away from arbitrarily long input.
MAX_TIME_LENGTH = 64

BODY_TOO_LARGE = "Request body must be at most 2 MB"
NOT_AN_OBJECT = "Request body must be a JSON object"
BAD_CLIENT_SECRET = "client_secret must be a string"  # noqa: S105 -- a message, not a secret
BAD_COHORT_ID = "cohort_id must be a valid string"
BAD_CHANGES = (
    "cohort_changes must be an array of objects with user_ids and/or device_ids string arrays, "
    "or an aliases object"
)
TOO_MANY_IDENTIFIERS = (
    f"Only {MAX_IDENTIFIERS} user_ids, device_ids and aliases allowed per request"
)
BAD_NAME = "name must be a non-empty string"
LONG_NAME = f"name must be at most {MAX_NAME_LENGTH} characters"
BAD_CREATED_AT = "created_at must be a valid ISO-8601 time"
BAD_SHOULD_REMOVE = "should_remove must be a boolean"
BAD_ALIASES = "aliases must be an array of objects with alias_name and alias_label strings"

ID_FIELDS = {"user_ids": IdType.EXTERNAL_ID.value, "device_ids": IdType.DEVICE_ID.value}


def bad_identifier(field: str) -> str:
    if field in ID_FIELDS:
        return f"{field} must hold non-empty strings of at most {MAX_IDENTIFIER_LENGTH} characters"
    return f"{field} must be a non-empty string of at most {MAX_IDENTIFIER_LENGTH} characters"


def bad_characters(field: str) -> str:
    return f"{field} must not contain NUL characters or unpaired surrogates"


class PayloadError(Exception):
    """The payload is not acceptable; `message` is what the partner sees."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class CohortUpsert:
    cohort_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class UsersChange:
    cohort_id: str
    # Disjoint: the final intent per identity, the last change object that names it winning.
    add: tuple[Identity, ...]
    remove: tuple[Identity, ...]
    # Identifiers as sent, duplicates included.
    sent: int


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        return None
    return value if isinstance(value, dict) else None


def client_secret(payload: dict[str, Any] | None, authorization: str | None) -> str | None:
    """The data-import key: `client_secret` in the body, else an `Authorization: Bearer` one."""
    if payload is not None and isinstance(payload.get("client_secret"), str):
        return str(payload["client_secret"])
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _storable(text: str) -> bool:
    """Whether every database we support can store the text as is."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _cohort_id(payload: dict[str, Any]) -> str:
    value = payload.get("cohort_id")
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_IDENTIFIER_LENGTH
        or not _storable(value)
    ):
        raise PayloadError(BAD_COHORT_ID)
    return value


def loggable_cohort_id(payload: dict[str, Any] | None) -> str:
    """The payload's cohort_id if it is valid, else "" (for logging a rejected request)."""
    try:
        return _cohort_id(payload) if payload is not None else ""
    except PayloadError:
        return ""


def _time(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > MAX_TIME_LENGTH:
        raise PayloadError(BAD_CREATED_AT)
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        # Converting here: a time at the very edge of the calendar cannot be stored in UTC.
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PayloadError(BAD_CREATED_AT) from None


def parse_cohort_upsert(payload: dict[str, Any]) -> CohortUpsert:
    cohort_id = _cohort_id(payload)
    name = payload.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PayloadError(BAD_NAME)
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise PayloadError(LONG_NAME)
    if not _storable(name):
        raise PayloadError(bad_characters("name"))
    return CohortUpsert(cohort_id=cohort_id, name=name, created_at=_time(payload.get("created_at")))


def _identifier(value: Any, field: str, error: str) -> str:
    if not isinstance(value, str):
        raise PayloadError(error)
    if not value or len(value) > MAX_IDENTIFIER_LENGTH:
        raise PayloadError(bad_identifier(field))
    if not _storable(value):
        raise PayloadError(bad_characters(field))
    return value


def _alias(value: Any) -> Identity:
    if not isinstance(value, dict):
        raise PayloadError(BAD_ALIASES)
    name = _identifier(value.get("alias_name"), "alias_name", BAD_ALIASES)
    label = _identifier(value.get("alias_label"), "alias_label", BAD_ALIASES)
    return Identity(IdType.USER_ALIAS.value, name, label)


def _identities(change: dict[str, Any], sent_before: int) -> list[Identity]:
    """The identities of one change object; checks the request-wide cap before the items."""
    lists: dict[str, list[Any]] = {}
    for field in (*ID_FIELDS, "aliases"):
        if field not in change:
            continue
        value = change[field]
        if not isinstance(value, list):
            raise PayloadError(BAD_ALIASES if field == "aliases" else BAD_CHANGES)
        lists[field] = value
    if sent_before + sum(len(values) for values in lists.values()) > MAX_IDENTIFIERS:
        raise PayloadError(TOO_MANY_IDENTIFIERS)
    identities = [
        Identity(id_type, _identifier(value, field, BAD_CHANGES))
        for field, id_type in ID_FIELDS.items()
        for value in lists.get(field, [])
    ]
    identities += [_alias(value) for value in lists.get("aliases", [])]
    return identities


def parse_users_change(payload: dict[str, Any]) -> UsersChange:
    cohort_id = _cohort_id(payload)
    changes = payload.get("cohort_changes")
    if not isinstance(changes, list):
        raise PayloadError(BAD_CHANGES)
    intent: dict[tuple[str, str, str], tuple[Identity, bool]] = {}
    sent = 0
    for change in changes:
        if not isinstance(change, dict):
            raise PayloadError(BAD_CHANGES)
        should_remove = change.get("should_remove", False)
        if not isinstance(should_remove, bool):
            raise PayloadError(BAD_SHOULD_REMOVE)
        identities = _identities(change, sent)
        sent += len(identities)
        for identity in identities:
            intent[identity.key] = (identity, should_remove)
    return UsersChange(
        cohort_id=cohort_id,
        add=tuple(identity for identity, remove in intent.values() if not remove),
        remove=tuple(identity for identity, remove in intent.values() if remove),
        sent=sent,
    )
