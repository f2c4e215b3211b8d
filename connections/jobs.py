"""RQ entry points for connections: thin, ids in, the service does the work.
connections/queue.py enqueues them."""

from connections.services import run_connection_check


def check_connection(check_id: int) -> str:
    check = run_connection_check(check_id)
    return check.status if check is not None else "skipped"
