"""RQ entry points for connections: thin, ids in, the service does the work."""

import django_rq

from connections.services import run_connection_check


def check_connection(check_id: int) -> str:
    check = run_connection_check(check_id)
    return check.status if check is not None else "skipped"


def enqueue_connection_check(check_id: int) -> None:
    # Called after the check row committed, so the worker always finds it.
    queue = django_rq.get_queue("default", commit_mode="auto")
    queue.enqueue(check_connection, check_id, job_timeout=120, result_ttl=3600, failure_ttl=86400)
