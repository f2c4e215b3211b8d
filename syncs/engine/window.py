"""A run's window: how many of its requests may be unanswered at once.

A partner that answers in tens to hundreds of milliseconds is kept busy only by many requests in
flight: at its rate limit R requests a second and an answer time of L seconds, R x L of them.
The window starts small, opens to that after the first answer, and closes again on a 429. The
connection's limit (its maximum concurrent requests, shared by every run and worker of it, and
held in Redis by the admission desk) bounds it, and so does what the partner last said remains
of its budget. syncs/engine/run.py keeps up to the window's requests going. A run starts where
the partner's answer time in a recent run of the connection calls for, when that run met no 429
(`known_latency_ms`).
"""

import math

from connections.partners.base import RateLimit
from syncs.engine.events import Kind
from syncs.models import Sync, SyncRun, SyncRunEvent

# A run starts with this many batches in flight (more on a connection whose latest run met no
# 429: Window's `known_latency_ms`). Each batch answered without a 429 takes it to
# what the connection's rate calls for at the partner's answer time so far (rate x latency, the
# requests that keep the rate's budget busy), or one more if that is more, up to the
# connection's limit; a 429 halves it. A partner whose real limit is below the connection's
# setting is not flooded: the first answers' rate-limit headers teach the shared bucket before
# the window opens, and a 429 closes it again.
FIRST_IN_FLIGHT = 4
# How many of a sync's latest runs are looked through for one that made requests.
RECENT_RUNS = 20


class Window:
    """The requests a run may have unanswered at once (`size`), up to `limit`, for a
    connection allowed `rate`."""

    def __init__(self, *, limit: int, rate: RateLimit, known_latency_ms: int | None = None) -> None:
        """`known_latency_ms`: the partner's answer time in a recent run of the connection
        (`known_latency_ms()` says which), when that run met no 429. The window then starts at
        what that answer time calls for (rate x latency, at least FIRST_IN_FLIGHT), so the
        first round trip is not spent on four requests; a partner that has lowered its limit
        since answers 429 to some of the first ones, and the window halves as in any run.
        Without it (no run yet, or a 429 in the latest) the run probes with FIRST_IN_FLIGHT."""
        self.limit = limit
        self.rate = rate
        self.size = min(limit, max(FIRST_IN_FLIGHT, self.rate_times_latency(known_latency_ms)))
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


def latest_answer_time(connection_id: int) -> tuple[int, int | None] | None:
    """The partner's average answer time, in ms, in a recent run of the connection's sync that
    finished last (its latest of the last RECENT_RUNS that made requests), and that run's id;
    None before any. Three index reads, however many runs the connection has: ordering all its
    runs by their end took 110-250 ms with 1,000,000 runs in the database."""
    sync_id = (
        Sync.objects.filter(connection_id=connection_id, last_run_at__isnull=False)
        .order_by("-last_run_at")
        .values_list("pk", flat=True)
        .first()
    )
    if sync_id is None:
        return None
    recent = (
        SyncRun.objects.filter(sync_id=sync_id, finished_at__isnull=False)
        .order_by("-queued_at")
        .values_list("pk", "partner_latency_ms")[:RECENT_RUNS]
    )
    return next(((pk, ms) for pk, ms in recent if ms is not None), None)


def known_latency_ms(connection_id: int) -> int | None:
    """The partner's answer time in the connection's latest run, unless that run met a 429
    (then None, as before any run): a window to start from."""
    latest = latest_answer_time(connection_id)
    if latest is None:
        return None
    run_id, latency_ms = latest
    met_429 = SyncRunEvent.objects.filter(
        run_id=run_id, kind=Kind.THROTTLED, details__status=429
    ).exists()
    return None if met_429 else latency_ms
