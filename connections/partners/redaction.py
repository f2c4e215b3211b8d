"""A partner exchange made fit to store and show on a run's page: no credential, and no member
identifier beyond a small sample.

- Credentials: no request header is kept (the Authorization header carries the key); the query
  string is dropped from the path; any value under a key that names a credential (`api_key`,
  `token`, `secret`, ...) is masked, and the call's own secret is masked wherever it appears,
  in the request, the answer or the note.
- Identifiers: each partner says how its request bodies hold members (`Partner.redact_request`):
  the first few objects of a batch stay in full, the rest become one line ("… and 72 more
  objects"), and their identifiers are masked wherever the answer quotes them.
- Size: each body is pretty-printed and cut at TEXT_CHARS.
"""

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from connections.partners.exchanges import Exchange

MASK = "••••"
# Objects of a batch shown in full: enough to see the shape of what was sent.
SAMPLE = 3
# What is kept of a request or an answer once pretty-printed: a few KB each.
TEXT_CHARS = 4_000
# Keys whose value is a credential, wherever they appear in a body.
CREDENTIAL_KEY = re.compile(
    r"api[_-]?key|token|secret|password|passwd|authori[sz]ation|authentication|credential"
    r"|client[_-]?key|signature",
    re.I,
)
# Runs of characters an identifier is made of, in a message that quotes one; then the parts of a
# run that a label glues to it ("external_id:u-42", "id=u-42").
_TOKEN = re.compile(r"[^\s\"'`,;()\[\]{}<>]+")
_GLUE = re.compile(r"([:=/])")
_TRAILING = ".!?"


@dataclass(frozen=True)
class RedactedRequest:
    """A request body cut to its sample, and the identifiers it left out: those are masked
    wherever the partner's answer quotes them."""

    body: Any
    hidden: frozenset[str]


@dataclass(frozen=True)
class Transcript:
    """An exchange ready to store: redacted, pretty-printed, cut."""

    at: datetime
    method: str
    path: str
    status: int | None
    request: str
    answer: str
    milliseconds: int
    note: str


def sample_of(items: list[Any], sample: int, noun: str) -> tuple[list[Any], list[Any]]:
    """The first `sample` items then, when there were more, a line saying how many; and the
    items left out."""
    kept, rest = list(items[:sample]), list(items[sample:])
    if rest:
        kept.append(f"… and {len(rest):,} more {noun}")
    return kept, rest


def strings_in(value: Any) -> Iterator[str]:
    """Every string value in a JSON value (not its keys)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def sample_lists(body: Any, sample: int) -> RedactedRequest:
    """For a partner without a rule of its own: every list cut to its sample, and every string
    of the items left out hidden (nothing is known of which are identifiers)."""
    hidden: set[str] = set()

    def cut(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: cut(item) for key, item in value.items()}
        if isinstance(value, list):
            kept, rest = sample_of(value, sample, "items")
            hidden.update(text for item in rest for text in strings_in(item))
            return [cut(item) for item in kept[:sample]] + kept[sample:]
        return value

    return RedactedRequest(cut(body), frozenset(hidden))


def without_credentials(value: Any, secret: str) -> Any:
    """`value` with credential-named keys masked and `secret` masked wherever it appears."""
    if isinstance(value, str):
        return value.replace(secret, MASK) if secret else value
    if isinstance(value, dict):
        return {
            without_credentials(key, secret): MASK
            if isinstance(key, str) and CREDENTIAL_KEY.search(key)
            else without_credentials(item, secret)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [without_credentials(item, secret) for item in value]
    return value


def mask_identifiers(value: Any, hidden: frozenset[str]) -> Any:
    """`value` with every identifier of `hidden` masked in its strings: a whole string, a word
    of a message, or the part of a word after a label ("external_id:u-42")."""
    if not hidden:
        return value
    if isinstance(value, str):
        return _mask_text(value, hidden)
    if isinstance(value, dict):
        return {key: mask_identifiers(item, hidden) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_identifiers(item, hidden) for item in value]
    return value


def _mask_text(text: str, hidden: frozenset[str]) -> str:
    if text in hidden:
        return MASK

    def word(part: str) -> str:
        bare = part.rstrip(_TRAILING)  # the full stop that ends a sentence is not part of it
        return MASK + part[len(bare) :] if bare in hidden else part

    def token(match: re.Match[str]) -> str:
        masked = word(match.group(0))
        if masked != match.group(0):
            return masked
        return "".join(word(part) for part in _GLUE.split(match.group(0)))

    return _TOKEN.sub(token, text)


def as_text(value: Any, limit: int = TEXT_CHARS) -> str:
    """Pretty-printed JSON (a string as it is), cut at `limit` characters with a line saying so."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) > limit:
        return f"{text[:limit]}\n… cut here: {len(text):,} characters in all"
    return text


def request_path(url: str) -> str:
    """The path a request went to; its query string, which may carry a key, is never kept."""
    parts = urlsplit(url)
    return f"{parts.path or '/'}{'?…' if parts.query else ''}"


def transcript(
    exchange: Exchange, redact_request: Callable[[str, Any], RedactedRequest]
) -> Transcript:
    """The exchange as it may be stored and shown: `redact_request` is its partner's rule for
    what a request body holds (Partner.redact_request, with the sample size)."""
    secret = exchange.secret
    path = (
        request_path(exchange.url).replace(secret, MASK) if secret else request_path(exchange.url)
    )
    request = redact_request(path, exchange.request)
    answer = mask_identifiers(exchange.answer, request.hidden)
    return Transcript(
        at=exchange.at,
        method=exchange.method,
        path=path,
        status=exchange.status,
        request=as_text(without_credentials(request.body, secret)),
        answer=as_text(without_credentials(answer, secret)),
        milliseconds=round(exchange.seconds * 1000),
        note=without_credentials(mask_identifiers(exchange.note, request.hidden), secret),
    )
