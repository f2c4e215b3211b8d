"""Putting sync runs on the `runs` queue, for the services, the dispatcher and the reaper.

Jobs are named by their dotted path, so what enqueues a run never imports what runs it
(syncs/jobs.py, then the engine): the web process and the services stay below the engine.
"""

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta

import django_rq
import redis
from django.conf import settings
from django.utils import timezone
from rq import Queue, Retry
from rq.scripts import _build_hset_args, get_unique_enqueue_script

from core.requeue import requeue_lost
from syncs.models import SyncRun

RUNS_QUEUE = "runs"
RUN_JOB = "syncs.jobs.run_sync_job"
RUN_JOB_TIMEOUT = 6 * 3600
RUN_RESULT_TTL = 3600
RUN_FAILURE_TTL = 7 * 86400
VERIFY_JOB = "syncs.jobs.verify_run_job"
# Seconds before the second and third attempt of a verification the partner turned away (429,
# 5xx): Braze's export budget is counted per minute.
VERIFY_RETRY_BACKOFF_SECONDS = [60, 120]
# The moment between a verification marked pending and its job in Redis.
VERIFY_GRACE = timedelta(minutes=1)


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def run_queue() -> Queue:
    # One Redis client per process: django-rq makes a new one (a new TCP connection) per call,
    # and a dispatcher starting thousands of runs ran out of local ports (bench/dispatcher_tick).
    connection = _redis(settings.RQ_QUEUES[RUNS_QUEUE]["URL"])
    return django_rq.get_queue(RUNS_QUEUE, commit_mode="auto", connection=connection)


def run_job_id(run_id: int, attempt: int = 0) -> str:
    # The run id and its attempt make the job id: a second enqueue of the same attempt is
    # refused by RQ, while a resume after an interruption gets a job of its own.
    return f"sync-run-{run_id}-{attempt}"


def enqueue_run(run_id: int, *, attempt: int = 0, delay: float = 0.0) -> None:
    """Queue the run's job for `attempt`; after `delay` seconds when given (RQ's scheduler,
    which the runs worker starts, moves it to the queue then)."""
    options = {
        "job_id": run_job_id(run_id, attempt),
        "job_timeout": RUN_JOB_TIMEOUT,
        "result_ttl": RUN_RESULT_TTL,
        "failure_ttl": RUN_FAILURE_TTL,
    }
    if delay > 0:
        run_queue().enqueue_in(timedelta(seconds=delay), RUN_JOB, run_id, **options)
    else:
        run_queue().enqueue(RUN_JOB, run_id, unique=True, **options)


def verification_job_id(run_id: int) -> str:
    return f"verify-run-{run_id}"


def enqueue_verification(run_id: int) -> None:
    """The read-back of a finished run's sample, on the `default` queue: a short job."""
    queue = django_rq.get_queue("default", commit_mode="auto")
    queue.enqueue(
        VERIFY_JOB,
        run_id,
        job_id=verification_job_id(run_id),
        retry=Retry(max=len(VERIFY_RETRY_BACKOFF_SECONDS), interval=VERIFY_RETRY_BACKOFF_SECONDS),
        job_timeout=300,
        result_ttl=RUN_RESULT_TTL,
        failure_ttl=RUN_FAILURE_TTL,
    )


def requeue_waiting_verifications(*, now: datetime | None = None) -> int:
    """Queue again the pending verifications whose job Redis does not have (it was unreachable
    when their run ended, or restarted empty); how many."""
    waiting = SyncRun.objects.filter(
        verification=SyncRun.Verification.PENDING,
        finished_at__lt=(now or timezone.now()) - VERIFY_GRACE,
    ).values_list("pk", flat=True)
    return requeue_lost(waiting, job_id=verification_job_id, enqueue=enqueue_verification)


def enqueue_new_runs(run_ids: Sequence[int]) -> list[int]:
    """Queue the first job of many runs in one Redis round trip; returns the ids whose job
    existed already (left as they were). Raises redis.RedisError when Redis is unreachable.

    Each job is the one enqueue_run makes, stored by the atomic script RQ's unique=True uses
    (refuse an existing job id, save, push). RQ runs that script outside any pipeline, one
    round trip per job, and its enqueue_many has no unique option: so the script is pipelined
    here, through two RQ internals pinned by requirements.txt (rq==2.12.0) and checked by
    tests/syncs/test_scheduler.py against enqueue_run's job.
    """
    queue = run_queue()
    unique_enqueue = get_unique_enqueue_script(queue.connection)
    with queue.connection.pipeline(transaction=False) as pipe:
        pipe.sadd(queue.redis_queues_keys, queue.key)
        for run_id in run_ids:
            job = queue.create_job(
                RUN_JOB,
                args=(run_id,),
                job_id=run_job_id(run_id),
                timeout=RUN_JOB_TIMEOUT,
                result_ttl=RUN_RESULT_TTL,
                failure_ttl=RUN_FAILURE_TTL,
            )
            queue._prepare_for_queue(job)  # origin, enqueued_at, status: as queue.enqueue does
            ttl = job.ttl if job.ttl is not None else -1
            unique_enqueue(
                keys=[job.key, queue.key],
                args=[job.id, "R", ttl, *_build_hset_args(job)],
                client=pipe,
            )
        stored = pipe.execute()[1:]
    return [run_id for run_id, saved in zip(run_ids, stored, strict=True) if not saved]
