"""Rate limits the simulator's processes share (`partner_sandbox --processes N`).

A partner's rate limit counts every request it gets, whichever of its servers answers it; so
must the simulator's, or four processes limited to 300 requests/s each would let 1,200 through.
Each bucket here lives in shared memory created before the processes fork, behind one
process-shared lock, and holds its own capacity and window, so a limit set through any process
holds in all of them. Everything else a process keeps for itself (see connections/sandbox/
cluster.py for what is relayed and what is merged).
"""

from __future__ import annotations

import math
import multiprocessing
import time
from typing import Any

from connections.sandbox.state import RateVerdict

# Slots of a bucket's shared array.
_CAPACITY, _WINDOW, _TOKENS, _UPDATED = range(4)


class SharedTokenBucket:
    """`capacity` requests per `window` seconds, refilled continuously, in shared memory.

    A capacity of 0 means no limit (AppsFlyer's default: it publishes none). Same answers as
    `state.TokenBucket`, for any number of processes forked after it was made.
    """

    def __init__(self, context: Any, capacity: int, window: float) -> None:
        self._slots = context.RawArray("d", 4)
        self._lock = context.Lock()
        self.reconfigure(capacity, window)

    @property
    def capacity(self) -> int:
        return int(self._slots[_CAPACITY])

    @property
    def window(self) -> float:
        return float(self._slots[_WINDOW])

    @property
    def limited(self) -> bool:
        return self.capacity > 0

    def reconfigure(self, capacity: int, window: float) -> None:
        """A new limit, starting from a full bucket (as a single process's new bucket does)."""
        with self._lock:
            self._slots[_CAPACITY] = float(capacity)
            self._slots[_WINDOW] = float(window)
            self._slots[_TOKENS] = float(capacity)
            self._slots[_UPDATED] = time.time()

    def take(self, consume: bool = True) -> RateVerdict:
        with self._lock:
            capacity = self._slots[_CAPACITY]
            now = time.time()
            rate = capacity / self._slots[_WINDOW]
            tokens = min(capacity, self._slots[_TOKENS] + (now - self._slots[_UPDATED]) * rate)
            allowed = tokens >= 1.0
            if allowed and consume:
                tokens -= 1.0
            self._slots[_TOKENS] = tokens
            self._slots[_UPDATED] = now
        reset = math.ceil(now + (capacity - tokens) / rate) if rate else math.ceil(now)
        return RateVerdict(allowed, int(capacity), math.floor(tokens), reset)


class SharedLimits:
    """The three limits a partner enforces across its servers: Braze's `/users/track` and
    `/users/export/ids` budgets, and AppsFlyer's (unpublished, off unless configured)."""

    def __init__(self, braze: tuple[int, float], export: tuple[int, float]) -> None:
        context = multiprocessing.get_context("fork")
        self.braze = SharedTokenBucket(context, *braze)
        self.braze_export = SharedTokenBucket(context, *export)
        self.appsflyer = SharedTokenBucket(context, 0, 1.0)
