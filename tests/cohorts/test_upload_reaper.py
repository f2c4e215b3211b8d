"""The upload reaper fails uploads whose job died without RQ's failure callback (OOM, kill -9)."""

from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone
from rq.job import Job

from cohorts.csv_import import INTERRUPTED
from cohorts.models import CsvUpload
from cohorts.queue import csv_job_id, enqueue_csv_import
from cohorts.upload_reaper import reap_stuck_uploads

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


def upload(cohort, status=CsvUpload.Status.RUNNING, age=timedelta(minutes=10)):
    return CsvUpload.objects.create(
        cohort=cohort,
        mode=CsvUpload.Mode.ADD,
        file_name="members.csv",
        stored_path="",
        status=status,
        created_at=timezone.now() - age,
    )


def status(row):
    row.refresh_from_db()
    return row.status


def test_an_upload_whose_job_redis_lost_is_failed(cohort):
    lost = upload(cohort)
    assert reap_stuck_uploads() == 1
    assert status(lost) == CsvUpload.Status.FAILED
    lost.refresh_from_db()
    assert lost.error == INTERRUPTED


def test_an_upload_whose_job_rq_marked_failed_is_failed(cohort):
    dead = upload(cohort)
    enqueue_csv_import(dead.pk)
    job = Job.fetch(csv_job_id(dead.pk), connection=django_rq.get_connection("runs"))
    job.set_status("failed")
    assert reap_stuck_uploads() == 1
    assert status(dead) == CsvUpload.Status.FAILED


def test_queued_and_recent_uploads_are_left_alone(cohort):
    waiting = upload(cohort, status=CsvUpload.Status.QUEUED)
    enqueue_csv_import(waiting.pk)  # a job still waiting in the queue
    fresh = upload(cohort, age=timedelta(seconds=5))  # its job may be about to be queued
    done = upload(cohort, status=CsvUpload.Status.SUCCEEDED)
    assert reap_stuck_uploads() == 0
    assert status(waiting) == CsvUpload.Status.QUEUED
    assert status(fresh) == CsvUpload.Status.RUNNING
    assert status(done) == CsvUpload.Status.SUCCEEDED
