"""Work is a row in the database first, and a job in Redis second: what Redis lost (it was
unreachable when the work was asked for, or restarted empty) is queued again from the rows."""

from collections.abc import Callable, Iterable

import django_rq
from rq.job import Job


def requeue_lost(
    ids: Iterable[int],
    *,
    job_id: Callable[[int], str],
    enqueue: Callable[[int], None],
    queue: str = "default",
) -> int:
    """Enqueue each id whose job (named by `job_id`) Redis does not have; how many."""
    connection = django_rq.get_connection(queue)
    lost = [pk for pk in ids if not Job.exists(job_id(pk), connection=connection)]
    for pk in lost:
        enqueue(pk)
    return len(lost)
