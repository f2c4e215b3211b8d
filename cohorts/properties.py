"""Member properties read from text (a downloaded file's columns): the value a member keeps.

CSV has no types, so a value is read as a number or a boolean only when that cannot be wrong:
`true` / `false` (any case) are booleans; an integer without leading zeros and of at most 15
digits is a number (a zip code "01234" or a long id stays text, exactly as written); a decimal
like `2.5` is a number under the same rule; a JSON array (`["a", "b"]`) is an array. Anything
else is text, kept as written (a time is text here; trait syncs send one as a time). An empty
field is no property at all.
"""

import json
import re
from collections.abc import Iterable
from typing import Any

INTEGER = re.compile(r"^-?(0|[1-9]\d{0,14})$")
DECIMAL = re.compile(r"^-?(0|[1-9]\d{0,14})\.\d{1,15}$")
BOOLEANS = {"true": True, "false": False}


def property_value(text: str) -> Any:
    """The typed value of a field (None for an empty one: the member does not have it)."""
    if text == "":
        return None
    boolean = BOOLEANS.get(text.lower())
    if boolean is not None:
        return boolean
    if INTEGER.match(text):
        return int(text)
    if DECIMAL.match(text):
        return float(text)
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return text
        if isinstance(parsed, list):
            return parsed
    return text


def properties_of(columns: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A member's properties from (name, field text) pairs; empty fields are left out."""
    found = {}
    for name, text in columns:
        value = property_value(text)
        if value is not None:
            found[name] = value
    return found
