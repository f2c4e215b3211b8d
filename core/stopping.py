"""A process-wide request to stop, raised when the RQ work horse gets SIGTERM
(cohortsync/worker.py) and polled by long jobs at their checkpoints, so that a normal stop of a
worker (Ctrl+C, `kill -TERM`, a deploy) ends a sync run at its next checkpoint, re-queued to
resume there, instead of killing it mid-batch."""

import threading

_requested = threading.Event()


def request_stop() -> None:
    _requested.set()


def stop_requested() -> bool:
    return _requested.is_set()


def forget_stop_request() -> None:
    """For tests, which run jobs in the test process."""
    _requested.clear()
