"""CSV upload services: accept a file and queue its import, and describe an upload's progress."""

import logging
import math
import os
import uuid
from dataclasses import dataclass

import redis
from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from cohorts.models import Cohort, CsvUpload
from cohorts.queue import enqueue_csv_import
from core import audit

logger = logging.getLogger(__name__)

QUEUE_UNREACHABLE = (
    "The job queue (Redis) is unreachable: the file is kept, and its import starts once Redis "
    "is back."
)


def start_csv_upload(
    *,
    cohort: Cohort,
    mode: str,
    uploaded_file: File,
    actor: User | None,
    ip: str | None = None,
) -> CsvUpload:
    """Store the file, record the upload and queue its import. If the queue is unreachable the
    upload stays queued with its file, saying so; the upload reaper queues it once Redis is
    back."""
    cohort.refuse_manual_changes()
    file_name = os.path.basename(uploaded_file.name or "upload.csv")[:255]
    # Storage streams the file in chunks (or moves Django's temporary file): never read whole.
    stored_path = default_storage.save(f"uploads/{uuid.uuid4().hex}.csv", uploaded_file)
    try:
        with transaction.atomic():
            upload = CsvUpload.objects.create(
                cohort=cohort,
                mode=mode,
                file_name=file_name,
                stored_path=stored_path,
                size_bytes=default_storage.size(stored_path),
                created_by=actor,
            )
            audit.record(
                actor=actor,
                action="cohort.csv_uploaded",
                target=cohort,
                details={
                    "upload": upload.pk,
                    "mode": mode,
                    "file_name": file_name,
                    "size_bytes": upload.size_bytes,
                },
                ip=ip,
            )
    except BaseException:
        default_storage.delete(stored_path)
        raise
    try:
        enqueue_csv_import(upload.pk)
    except redis.RedisError as exc:
        logger.error("Could not queue CSV upload %s: %s", upload.pk, type(exc).__name__)
        # Until the import starts, the note says why it waits (cleared when it starts).
        CsvUpload.objects.filter(pk=upload.pk).update(error=QUEUE_UNREACHABLE)
    upload.refresh_from_db()
    return upload


@dataclass(frozen=True)
class UploadProgress:
    """The rate and time left of a running upload, for templates/cohorts/uploads/_progress.html."""

    upload: CsvUpload
    rows_per_second: int | None
    time_left: str


def describe_progress(upload: CsvUpload) -> UploadProgress:
    rate: int | None = None
    time_left = ""
    if upload.status == CsvUpload.Status.RUNNING and upload.started_at is not None:
        elapsed = (timezone.now() - upload.started_at).total_seconds()
        if elapsed > 0 and upload.rows_done:
            rate = int(upload.rows_done / elapsed)
        if elapsed > 0 and 0 < upload.bytes_done < upload.size_bytes:
            remaining = elapsed * (upload.size_bytes - upload.bytes_done) / upload.bytes_done
            time_left = _duration(remaining)
    return UploadProgress(upload, rate, time_left)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
