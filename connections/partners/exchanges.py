"""What a partner call sent and what came back, kept while a block of code asks for it.

A run shows a few of its requests and the partner's answers on its page, so a marketer can read
a partner error without the logs. The egress helper (connections/partners/http.py) notes each
call here, but only inside `recording()`: elsewhere (connection checks, verification) a call
keeps nothing. What is noted stays in memory, raw: it is redacted
(connections/partners/redaction.py) only when the engine decides to store it, so an ordinary
batch costs a list append and no copy: a few microseconds, so this is all plain classes and
floats (no generator context manager, no timezone-aware clock read until an exchange is kept).
"""

import time
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_exchanges: ContextVar[list["Exchange"] | None] = ContextVar("partner_exchanges", default=None)


@dataclass(slots=True)
class Exchange:
    """One request and its answer, as sent and received: `status` None when no answer came
    (`note` says why). `secret` is the credential the call used, held only so redaction can
    take it out of anything the partner echoed back: it is never stored nor shown."""

    sent_at: float  # epoch seconds
    method: str
    url: str
    request: Any
    status: int | None
    answer: Any
    seconds: float
    note: str = ""
    secret: str = field(default="", repr=False)

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.sent_at, tz=UTC)

    @property
    def failed(self) -> bool:
        """No answer, or an answer that refused the request (4xx, 5xx, 429)."""
        return self.status is None or self.status >= 400


class _Recording:
    __slots__ = ("noted", "token")

    def __enter__(self) -> list[Exchange]:
        self.noted: list[Exchange] = []
        self.token: Token[list[Exchange] | None] = _exchanges.set(self.noted)
        return self.noted

    def __exit__(self, *exc_info: object) -> None:
        _exchanges.reset(self.token)


def recording() -> _Recording:
    """`with recording() as noted:` the partner calls this thread makes inside the block are
    appended to `noted`, in the order they were made."""
    return _Recording()


class Pending:
    """A request under way inside `recording()`: noted once its answer, or the reason there is
    none, is known, with the time it took."""

    __slots__ = ("method", "noted", "payload", "secret", "sent_at", "started", "url")

    def __init__(self, noted: list[Exchange], method: str, url: str, payload: Any, secret: str):
        self.noted = noted
        self.method, self.url, self.payload, self.secret = method, url, payload, secret
        self.sent_at = time.time()
        self.started = time.perf_counter()

    def answered(self, status: int | None, answer: Any, *, note: str = "") -> None:
        self.noted.append(
            Exchange(
                sent_at=self.sent_at,
                method=self.method,
                url=self.url,
                request=self.payload,
                status=status,
                answer=answer,
                seconds=time.perf_counter() - self.started,
                note=note,
                secret=self.secret,
            )
        )


def pending(method: str, url: str, payload: Any, secret: str) -> Pending | None:
    """A request about to go out, to note when it is answered; None outside `recording()`, where
    nothing is kept."""
    noted = _exchanges.get()
    return None if noted is None else Pending(noted, method, url, payload, secret)
