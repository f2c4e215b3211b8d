"""Fewer garbage collections while a process does bulk work (a sync run).

A run makes millions of short-lived containers (rows, members, recipients, request bodies) that
reference counting frees; only a handful form cycles. Python's cycle collector still starts a
young collection every 700 containers allocated, and each one walks what survived since the last:
the pages read ahead, the batches in flight. Every tenth promotes those to the middle generation,
and every hundredth walks everything the process has ever imported. On a 2-CPU box that was
about a sixth of a 200,000-member run's CPU (12.9 and 13.1 s against 10.5 and 10.9 s; see
bench/README.md).

Inside `fewer_collections()` the objects that existed before the run (Django, the models, the
imports) are frozen, so no collection walks them, and a young collection waits for 10,000
containers. Cycles are still collected, less often. The old settings come back when the last
run of the process leaves (runs may overlap in threads: the tests, a SimpleWorker).
"""

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Containers allocated between two young collections during bulk work (Python's default: 700).
# 10,000 and 100,000 measured the same; the smaller keeps the uncollected garbage small.
YOUNG_THRESHOLD = 10_000

_lock = threading.Lock()
_inside = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    global _inside, _saved
    with _lock:
        if _inside == 0:
            _saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(YOUNG_THRESHOLD, _saved[1], _saved[2])
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                gc.unfreeze()
                _saved = None
