"""Validation of Amplitude's Cohort Webhooks batches (docs/partners/amplitude.md §9). Pure: no
database, no I/O. A batch that does not parse raises PayloadError with what the sender gets in
a 400, and nothing of it is kept."""

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cohorts.inbound.schema import PayloadError
from cohorts.models import MAX_IDENTIFIER_LENGTH

# Amplitude sends 1,000 users per request by default (docs/partners/amplitude.md §8). The body
# limit leaves each of them about 5 kB of user_properties.
MAX_USERS = 1000
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_NAME_LENGTH = 255
# Epoch seconds as Amplitude's template writes them ("1692206763"), a fraction allowed.
EPOCH = re.compile(r"^\d{1,12}(\.\d{1,9})?$")

BODY_TOO_LARGE = "Request body must be at most 5 MB"
NOT_AN_OBJECT = "Request body must be a JSON object"
NO_KEY = "Send the data-import key as Authorization: Bearer <key>"
BAD_IN_COHORT = "in_cohort must be true or false"
BAD_COMPUTED_TIME = 'computed_time must be epoch seconds (like "1692206763")'
BAD_USERS = "users must be an array of objects with a user_id string"
TOO_MANY_USERS = f"users: at most {MAX_USERS} per batch; set the batch size to {MAX_USERS} or less"


def bad_text(field: str, longest: int = MAX_IDENTIFIER_LENGTH) -> str:
    return f"{field} must be a non-empty string of at most {longest} characters"


def bad_user(index: int, field: str) -> str:
    if field == "user_properties":
        return f"users[{index}].user_properties must be an object"
    return bad_text(f"users[{index}].user_id")


@dataclass(frozen=True)
class WebhookBatch:
    cohort_id: str
    cohort_name: str
    in_cohort: bool
    computed_at: datetime
    message_id: str
    # Unique, in the order sent; `sent` counts them as sent, repeats included.
    user_ids: tuple[str, ...]
    sent: int
    # Per user id, the user_properties sent with it (the last, for a user sent twice); users
    # sent without any are absent.
    user_properties: dict[str, dict[str, Any]] = field(default_factory=dict)


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: Any, longest: int = MAX_IDENTIFIER_LENGTH) -> str | None:
    if isinstance(value, str) and value.strip() and len(value) <= longest and _storable(value):
        return value
    return None


def _field(payload: dict[str, Any], field: str, longest: int = MAX_IDENTIFIER_LENGTH) -> str:
    value = _text(payload.get(field), longest)
    if value is None:
        raise PayloadError(bad_text(field, longest))
    return value


def loggable_cohort_id(payload: dict[str, Any] | None) -> str:
    """The payload's cohort_id if it is valid, else "" (for logging a refused batch)."""
    return (_text(payload.get("cohort_id")) or "") if payload is not None else ""


def _computed_at(value: Any) -> datetime:
    if isinstance(value, bool):
        raise PayloadError(BAD_COMPUTED_TIME)
    number = isinstance(value, int | float)
    if not (number or (isinstance(value, str) and EPOCH.match(value))):
        raise PayloadError(BAD_COMPUTED_TIME)
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise PayloadError(BAD_COMPUTED_TIME)
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise PayloadError(BAD_COMPUTED_TIME) from None


def _users(value: Any) -> tuple[tuple[str, ...], int, dict[str, dict[str, Any]]]:
    """The unique user ids in the order sent, how many were sent, and their user_properties."""
    if not isinstance(value, list):
        raise PayloadError(BAD_USERS)
    # The cap is checked before the items are read.
    if len(value) > MAX_USERS:
        raise PayloadError(TOO_MANY_USERS)
    user_ids: dict[str, None] = {}
    properties: dict[str, dict[str, Any]] = {}
    for index, user in enumerate(value):
        if not isinstance(user, dict):
            raise PayloadError(BAD_USERS)
        user_id = _text(user.get("user_id"))
        if user_id is None:
            raise PayloadError(bad_user(index, "user_id"))
        if "user_properties" in user:
            if not isinstance(user["user_properties"], dict):
                raise PayloadError(bad_user(index, "user_properties"))
            # Kept as the member's properties (docs/partners/amplitude.md §9).
            properties[user_id] = user["user_properties"]
        user_ids[user_id] = None
    return tuple(user_ids), len(value), properties


def parse_batch(payload: dict[str, Any]) -> WebhookBatch:
    cohort_id = _field(payload, "cohort_id")
    cohort_name = _field(payload, "cohort_name", MAX_NAME_LENGTH).strip()
    in_cohort = payload.get("in_cohort")
    if not isinstance(in_cohort, bool):
        raise PayloadError(BAD_IN_COHORT)
    computed_at = _computed_at(payload.get("computed_time"))
    message_id = _field(payload, "message_id")
    user_ids, sent, user_properties = _users(payload.get("users"))
    return WebhookBatch(
        cohort_id=cohort_id,
        cohort_name=cohort_name,
        in_cohort=in_cohort,
        computed_at=computed_at,
        message_id=message_id,
        user_ids=user_ids,
        sent=sent,
        user_properties=user_properties,
    )
