"""Fail CSV uploads whose job died without telling: a work horse killed for memory (OOM) or a
worker killed outright never runs RQ's failure callback, so the upload would stay "running".

The apply is one transaction, so a dead job changed nothing in the cohort; failing the upload
only tells the person to upload again.
"""

from datetime import datetime, timedelta

import django_rq
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from cohorts.csv_import import fail_interrupted_upload
from cohorts.models import CsvUpload
from cohorts.queue import csv_job_id

# A queued job may wait behind others; only a job Redis no longer has, or one RQ gave up on,
# is dead. The grace covers the moment between the upload's commit and its enqueue.
GRACE = timedelta(minutes=2)
DEAD = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


def reap_stuck_uploads(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    redis = django_rq.get_connection("default")
    unfinished = CsvUpload.objects.filter(
        status__in=[CsvUpload.Status.QUEUED, CsvUpload.Status.RUNNING],
        created_at__lt=now - GRACE,
    ).values_list("pk", flat=True)
    failed = 0
    for upload_id in unfinished:
        try:
            status = Job.fetch(csv_job_id(upload_id), connection=redis).get_status()
        except NoSuchJobError:
            status = None
        if status is None or status in DEAD:
            fail_interrupted_upload(upload_id)
            failed += 1
    return failed
