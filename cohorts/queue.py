"""Putting CSV imports on the `runs` queue (they may take minutes, like a sync run), and
Amplitude webhook batches on `default`.

The job is named by its dotted path, so the upload service never imports the importer's job.
"""

import django_rq
from rq import Callback

CSV_QUEUE = "runs"
CSV_JOB = "cohorts.jobs.import_csv"
CSV_JOB_FAILED = "cohorts.jobs.import_csv_failed"
CSV_JOB_TIMEOUT = 3600


def csv_job_id(upload_id: int) -> str:
    return f"csv-upload-{upload_id}"


def enqueue_csv_import(upload_id: int) -> None:
    # Called after the upload row committed, so the worker always finds it.
    queue = django_rq.get_queue(CSV_QUEUE, commit_mode="auto")
    queue.enqueue(
        CSV_JOB,
        upload_id,
        job_id=csv_job_id(upload_id),
        job_timeout=CSV_JOB_TIMEOUT,
        result_ttl=3600,
        failure_ttl=86400,
        on_failure=Callback(CSV_JOB_FAILED),
    )


# Amplitude webhook batches: short (at most 1,000 users), and a real-time sync waits on them, so
# they go on the `default` queue rather than behind long runs.
AMPLITUDE_QUEUE = "default"
AMPLITUDE_JOB = "cohorts.jobs.apply_amplitude_batch"


def amplitude_job_id(batch_id: int) -> str:
    return f"amplitude-batch-{batch_id}"


def enqueue_amplitude_batch(batch_id: int) -> None:
    # Called after the batch row committed, so the worker always finds it.
    queue = django_rq.get_queue(AMPLITUDE_QUEUE, commit_mode="auto")
    queue.enqueue(
        AMPLITUDE_JOB,
        batch_id,
        job_id=amplitude_job_id(batch_id),
        job_timeout=600,
        result_ttl=3600,
        failure_ttl=86400,
    )


# Amplitude pulls: a download of a large cohort takes minutes, so they go on `runs`.
PULL_QUEUE = "runs"
PULL_JOB = "cohorts.jobs.run_amplitude_pull"
PULL_JOB_TIMEOUT = 3600


def enqueue_pull(pull_id: int, *, due: str) -> None:
    """One job per pull and due time: a dispatch retried for the same slot queues nothing new."""
    queue = django_rq.get_queue(PULL_QUEUE, commit_mode="auto")
    queue.enqueue(
        PULL_JOB,
        pull_id,
        job_id=f"amplitude-pull-{pull_id}-{due}",
        job_timeout=PULL_JOB_TIMEOUT,
        result_ttl=3600,
        failure_ttl=86400,
    )


# Reading a source's cohort list: one short call, so `default`.
LISTING_JOB = "cohorts.jobs.list_amplitude_cohorts"


def enqueue_listing(connection_id: int) -> None:
    queue = django_rq.get_queue("default", commit_mode="auto")
    queue.enqueue(
        LISTING_JOB,
        connection_id,
        job_id=f"amplitude-listing-{connection_id}",
        job_timeout=120,
        result_ttl=600,
        failure_ttl=86400,
    )
