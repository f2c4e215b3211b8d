"""A run's window: how many of its requests may be unanswered at once.

A partner that answers in tens to hundreds of milliseconds is kept busy only by many requests in
flight: at its rate limit R requests a second and an answer time of L seconds, R x L of them.
The window starts small, opens to that after the first answer, and closes again on a 429. The
connection's limit (its maximum concurrent requests, shared by every run and worker of it, and
held in Redis by the admission desk) bounds it, and so does what the partner last said remains
of its budget. syncs/engine/run.py keeps up to the window's requests going.
"""

import math

from connections.partners.base import RateLimit

# A run starts with this many batches in flight. Each batch answered without a 429 takes it to
# what the connection's rate calls for at the partner's answer time so far (rate x latency, the
# requests that keep the rate's budget busy), or one more if that is more, up to the
# connection's limit; a 429 halves it. A partner whose real limit is below the connection's
# setting is not flooded: the first answers' rate-limit headers teach the shared bucket before
# the window opens, and a 429 closes it again.
FIRST_IN_FLIGHT = 4


class Window:
    """The requests a run may have unanswered at once (`size`), up to `limit`, for a
    connection allowed `rate`."""

    def __init__(self, *, limit: int, rate: RateLimit) -> None:
        self.limit = limit
        self.rate = rate
        self.size = min(FIRST_IN_FLIGHT, limit)
        self._throttled_seen = 0

    def after_answer(
        self, *, throttled: int, latency_ms: int | None, remaining: int | None
    ) -> None:
        """Adapt to an answer: `throttled` is the run's count of 429s so far, `latency_ms` the
        partner's average answer time so far, `remaining` what the partner last said remains of
        its budget (None: it did not say, or the shared bucket alone paces the run).

        After an answer without a new 429: as many as the rate calls for at that answer time
        (at least one more than before), never more than the partner said remain; half as
        many after a 429, never fewer than one."""
        ceiling = self.limit
        if remaining is not None:
            ceiling = min(ceiling, max(1, remaining))
        if throttled > self._throttled_seen:
            self._throttled_seen = throttled
            self.size = max(1, self.size // 2)
        else:
            self.size = min(ceiling, max(self.size + 1, self.rate_times_latency(latency_ms)))

    def rate_times_latency(self, latency_ms: int | None) -> int:
        """The requests in flight that keep the connection's rate busy at an answer time of
        `latency_ms` (0 before the first answer)."""
        if latency_ms is None:
            return 0
        return math.ceil(self.rate.requests / self.rate.seconds * latency_ms / 1000)
