"""What a partner call sent and what came back, kept while a block of code asks for it.

A run shows a few of its requests and the partner's answers on its page, so a marketer can read
a partner error without the logs. The egress helper (connections/partners/http.py) notes each
call here, but only inside `recording()`: elsewhere (connection checks, verification) a call
keeps nothing. What is noted stays in memory, raw: it is redacted
(connections/partners/redaction.py) only when the engine decides to store it, so an ordinary
batch costs a list append and no copy.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

_exchanges: ContextVar[list["Exchange"] | None] = ContextVar("partner_exchanges", default=None)


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as sent and received: `status` None when no answer came
    (`note` says why). `secret` is the credential the call used, held only so redaction can
    take it out of anything the partner echoed back: it is never stored nor shown."""

    at: datetime
    method: str
    url: str
    request: Any
    status: int | None
    answer: Any
    seconds: float
    note: str = ""
    secret: str = field(default="", repr=False)

    @property
    def failed(self) -> bool:
        """No answer, or an answer that refused the request (4xx, 5xx, 429)."""
        return self.status is None or self.status >= 400


@contextmanager
def recording() -> Iterator[list[Exchange]]:
    """The partner calls this thread makes inside the block, appended to the list yielded, in
    the order they were made."""
    noted: list[Exchange] = []
    token = _exchanges.set(noted)
    try:
        yield noted
    finally:
        _exchanges.reset(token)


class Pending:
    """A request under way inside `recording()`: noted once its answer, or the reason there is
    none, is known, with the time it took."""

    def __init__(self, noted: list[Exchange], method: str, url: str, payload: Any, secret: str):
        self.noted = noted
        self.method, self.url, self.payload, self.secret = method, url, payload, secret
        self.at = timezone.now()
        self.started = time.perf_counter()

    def answered(self, status: int | None, answer: Any, *, note: str = "") -> None:
        self.noted.append(
            Exchange(
                at=self.at,
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
