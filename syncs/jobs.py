"""RQ entry points for cohorts: thin, ids in, the services do the work."""

import functools
from typing import Any

import django_rq
import redis
from django.conf import settings
from rq import Callback

from syncs.csv_import import fail_interrupted_upload, import_csv_upload

CSV_JOB_TIMEOUT = 3600


def import_csv(upload_id: int) -> str:
    upload = import_csv_upload(upload_id)
    return upload.status if upload is not None else "skipped"


def import_csv_failed(job: Any, connection: Any, *exc_info: Any) -> None:
    """RQ failure callback: a job that timed out, or whose worker was killed and the job later
    found abandoned, must not leave its upload running for ever."""
    fail_interrupted_upload(job.args[0])


def csv_job_id(upload_id: int) -> str:
    return f"csv-upload-{upload_id}"


def enqueue_csv_import(upload_id: int) -> None:
    # Called after the upload row committed, so the worker always finds it.
    queue = django_rq.get_queue("default", commit_mode="auto")
    queue.enqueue(
        import_csv,
        upload_id,
        job_id=csv_job_id(upload_id),
        job_timeout=CSV_JOB_TIMEOUT,
        result_ttl=3600,
        failure_ttl=86400,
        on_failure=Callback(import_csv_failed),
    )


RUN_JOB_TIMEOUT = 6 * 3600


def run_sync_job(run_id: int) -> str:
    from syncs.engine import run_sync

    return run_sync(run_id)


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def enqueue_run(run_id: int, *, attempt: int = 0) -> None:
    # The run id and its attempt make the job id: a second enqueue of the same attempt is
    # refused by RQ, while a resume after an interruption gets a job of its own.
    # One Redis client per process: django-rq makes a new one (a new TCP connection) per call,
    # and a dispatcher starting thousands of runs ran out of local ports (bench/dispatcher_tick).
    connection = _redis(settings.RQ_QUEUES["default"]["URL"])
    queue = django_rq.get_queue("default", commit_mode="auto", connection=connection)
    queue.enqueue(
        run_sync_job,
        run_id,
        job_id=f"sync-run-{run_id}-{attempt}",
        unique=True,
        job_timeout=RUN_JOB_TIMEOUT,
        result_ttl=3600,
        failure_ttl=7 * 86400,
    )


def dispatch_due_syncs() -> int:
    from syncs.scheduler import dispatch_due_syncs as dispatch

    return dispatch()


def reap_stuck_runs() -> int:
    from syncs.scheduler import reap_stuck_runs as reap

    return reap()


def reap_stuck_uploads() -> int:
    from syncs.upload_reaper import reap_stuck_uploads as reap

    return reap()
