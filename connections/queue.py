"""Putting credential checks on the `default` queue, named by path so the services never import
the job that runs them (connections/jobs.py)."""

import django_rq

CHECK_JOB = "connections.jobs.check_connection"


def enqueue_connection_check(check_id: int) -> None:
    # Called after the check row committed, so the worker always finds it.
    queue = django_rq.get_queue("default", commit_mode="auto")
    queue.enqueue(CHECK_JOB, check_id, job_timeout=120, result_ttl=3600, failure_ttl=86400)
