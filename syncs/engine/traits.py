"""A trait sync's rules, pure: which member properties go to which custom attributes, how a
property's value is written, and what a member needs sent given what was sent before.

A property's JSON type is kept (number, boolean, string, array, object); a string that reads
as a date and time (ISO-8601, or Amplitude's "2024-05-01 10:00:00") is written as ISO-8601 in
UTC, the form Braze takes for a time (docs/partners/braze.md §5), a time without a zone being
UTC. A property that is absent or null counts as removed.
"""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_TRAITS = 50
MAX_NAME_LENGTH = 255
# A date and a time, with an optional fraction and zone: what reads as a time, not a date.
DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$"
)


class TraitsError(ValueError):
    """A trait sync's traits are not valid; the message says why."""


@dataclass(frozen=True)
class Trait:
    """A member property and the custom attribute it is written to."""

    property: str
    attribute: str

    def to_dict(self) -> dict[str, str]:
        return {"property": self.property, "attribute": self.attribute}


def parse_traits(raw: object, *, attribute_error: Callable[[str], str | None]) -> list[Trait]:
    """The traits of `raw` ([{"property": ..., "attribute": ...}], the attribute defaulting to
    the property's name), validated: `attribute_error` says why the destination refuses an
    attribute name, or None."""
    if not isinstance(raw, list) or not raw:
        raise TraitsError("Choose at least one property to send.")
    if len(raw) > MAX_TRAITS:
        raise TraitsError(f"A trait sync sends at most {MAX_TRAITS} properties.")
    traits: list[Trait] = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise TraitsError('Each trait is an object: {"property": ..., "attribute": ...}.')
        name = item.get("property")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
            raise TraitsError(
                f"A trait's property must be a name of 1 to {MAX_NAME_LENGTH} characters."
            )
        attribute = item.get("attribute") or name
        if not isinstance(attribute, str):
            raise TraitsError(f"The attribute for {name} must be text.")
        attribute = attribute.strip()
        refused = attribute_error(attribute)
        if refused:
            raise TraitsError(f"{name} → {attribute or '(empty)'}: {refused}")
        traits.append(Trait(name.strip(), attribute))
    attributes = [trait.attribute for trait in traits]
    repeated = sorted({name for name in attributes if attributes.count(name) > 1})
    if repeated:
        raise TraitsError(
            f"Two properties would write the same attribute: {', '.join(repeated)}. "
            "Rename one of them."
        )
    return traits


def traits_of(raw: object) -> list[Trait]:
    """A saved sync's traits (validated when saved)."""
    return [Trait(str(item["property"]), str(item["attribute"])) for item in raw or []]  # type: ignore[attr-defined]


def attribute_value(value: Any) -> Any:
    """A property's value as written to the attribute: its type kept, a time in ISO-8601 UTC."""
    if isinstance(value, str) and DATE_TIME.match(value):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


SCALARS = (str, int, float, bool)


def same(sent: Any, value: Any) -> bool:
    """Whether two values are the same as Braze would hold them: types count (1, 1.0, true and
    "1" all differ), key order does not."""
    if type(sent) is type(value) and type(value) in SCALARS:
        return bool(sent == value)  # the usual case, without serialising
    return json.dumps(sent, sort_keys=True) == json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class TraitUpdate:
    """What a member is sent (attribute -> value, null to remove) and what the ledger holds
    for it once the partner accepted."""

    attributes: dict[str, Any]
    ledger: dict[str, Any]


def update_for(
    properties: Mapping[str, Any] | None,
    sent: Mapping[str, Any],
    traits: list[Trait],
    *,
    send_nulls: bool,
    everything: bool = False,
) -> TraitUpdate | None:
    """The member's update: the chosen attributes whose value differs from what the ledger
    says was `sent` (all it has, for `everything`, a full resync), and null for a chosen
    attribute sent before whose property is gone, when the sync `send_nulls`. None: nothing
    to send."""
    current: dict[str, Any] = {}
    for trait in traits:
        value = (properties or {}).get(trait.property)
        if value is not None:
            current[trait.attribute] = attribute_value(value)
    changes = {
        attribute: value
        for attribute, value in current.items()
        if everything or attribute not in sent or not same(sent[attribute], value)
    }
    if send_nulls:
        chosen = {trait.attribute for trait in traits}
        changes.update(
            (attribute, None)
            for attribute in sent
            if attribute in chosen and attribute not in current
        )
    if not changes:
        return None
    ledger = {
        attribute: value for attribute, value in {**sent, **changes}.items() if value is not None
    }
    return TraitUpdate(changes, ledger)
