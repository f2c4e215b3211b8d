"""CSV uploads whose job is gone. A queued upload whose job Redis does not have (Redis was
unreachable when it was uploaded, or restarted empty) is queued again: its file waits for it.
A running one whose job died without telling (a work horse killed for memory, a worker killed
outright never runs RQ's failure callback) is failed: the apply is one transaction, so the dead
job changed nothing in the cohort, and the person is told to upload again.
"""

from datetime import datetime, timedelta

import django_rq
import redis
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from cohorts.csv_import import fail_interrupted_upload
from cohorts.models import CsvUpload
from cohorts.queue import CSV_QUEUE, csv_job_id, enqueue_csv_import

# A queued job may wait behind others; only a job Redis no longer has, or one RQ gave up on,
# is dead. The grace covers the moment between the upload's commit and its enqueue.
GRACE = timedelta(minutes=2)
DEAD = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


def reap_stuck_uploads(*, now: datetime | None = None) -> int:
    """Returns how many uploads it queued again or failed."""
    now = now or timezone.now()
    connection = django_rq.get_connection(CSV_QUEUE)
    unfinished = CsvUpload.objects.filter(
        status__in=[CsvUpload.Status.QUEUED, CsvUpload.Status.RUNNING],
        created_at__lt=now - GRACE,
    ).values_list("pk", "status")
    touched = 0
    for upload_id, status in unfinished:
        job_status = _job_status(connection, upload_id)
        if job_status is not None and job_status not in DEAD:
            continue
        if status == CsvUpload.Status.QUEUED and job_status is None:
            enqueue_csv_import(upload_id)
        else:
            fail_interrupted_upload(upload_id)
        touched += 1
    return touched


def _job_status(connection: redis.Redis, upload_id: int) -> JobStatus | None:
    try:
        return Job.fetch(csv_job_id(upload_id), connection=connection).get_status()
    except NoSuchJobError:
        return None
