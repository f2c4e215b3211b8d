"""The database work a run can do on threads of its own, beside its sending threads: whether it
may, and reading the plan's pages ahead (the group commits' writer is syncs/engine/group_commit.py).

A run's thread waits for every database round trip it makes, and no batch goes out meanwhile;
on a loaded box a thread woken by its socket also waits for the interpreter behind the sending
threads, so a 3 ms page read cost the run tens of ms. A thread of its own, with its own
connection, waits instead while the run goes on sending.
"""

from collections.abc import Callable, Iterator
from queue import Empty, Full, Queue
from threading import Event, Thread
from typing import Any, TypeVar

from django.db import connection

T = TypeVar("T")
# How long a blocked hand-over waits before it checks whether the run stopped reading.
POLL_SECONDS = 0.1


def off_thread_possible() -> bool:
    """Whether another connection sees what this one committed and may write beside it:
    PostgreSQL, outside a transaction (a worker; not a test holding its rows in one)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def read_ahead(
    pages: Callable[[], Iterator[T]], *, off_thread: bool, depth: int = 2
) -> Iterator[T]:
    """The items of `pages()`, read up to `depth` ahead on a thread of their own when
    `off_thread`; an error there is raised here, in the run's thread."""
    if not off_thread:
        yield from pages()
        return
    ready: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = Event()

    def hand_over(kind: str, item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put((kind, item), timeout=POLL_SECONDS)
                return True
            except Full:
                continue
        return False

    def read() -> None:
        try:
            for page in pages():
                if not hand_over("page", page):
                    return
            hand_over("end", None)
        except BaseException as exc:
            hand_over("error", exc)
        finally:
            connection.close()  # this thread's own connection

    reader = Thread(target=read, name="plan-pages", daemon=True)
    reader.start()
    try:
        while True:
            try:
                kind, item = ready.get(timeout=POLL_SECONDS)
            except Empty:
                if reader.is_alive():
                    continue
                try:  # it may have handed its last word over just before it ended
                    kind, item = ready.get_nowait()
                except Empty:
                    raise RuntimeError("The plan's page reader stopped without a word.") from None
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        reader.join()
