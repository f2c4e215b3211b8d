"""Applying an uploaded CSV to its cohort, in two phases.

1. Stream and stage: the stored file is read line by line (never whole), each chunk of good rows
   is inserted into CsvUploadRow and committed with the upload's progress, and bad rows go to a
   bad-rows CSV (`line,reason,raw`) kept in default storage.
2. Apply, in one transaction: staged rows are read back in keyset-paged chunks and added or
   removed through `cohorts.membership`; replace then deletes, in one statement, the members the
   file does not name. A worker killed here rolls back, so the cohort never half-changes.

Repeated identities: the last row of the file wins (earlier staged rows of the identity are
deleted before applying) and the earlier rows count as ignored. A file whose rows are all bad is
fatal, so a broken export cannot empty a cohort; a header-only file in replace mode does empty
it, on purpose.
"""

import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import OperationalError, connection, reset_queries, transaction
from django.utils import timezone

from cohorts.csv_rows import BadRow, CsvFileError, Lines, parse_header, parse_row, raw_text
from cohorts.csv_rows import read_records as read_csv_records
from cohorts.membership import ChangeCounts, Identity, add_members, record_change, remove_members
from cohorts.models import EXTRA_IDENTIFIERS, Cohort, CohortMember, CsvUpload, CsvUploadRow
from core import audit
from core.csv_export import SafeWriter

logger = logging.getLogger(__name__)

CHUNK_ROWS = 5000
# Member statistics are refreshed when the cohort reaches this size, then each time it doubles.
ANALYZE_FROM_MEMBERS = CHUNK_ROWS
# Test hook: seconds to sleep after each applied chunk, so a test can kill the job mid-apply
# (tests/cohorts/test_csv_kill.py). Unset in production.
TEST_APPLY_PAUSE_ENV = "COHORTSYNC_TEST_APPLY_PAUSE"
INTERNAL_ERROR = "The import stopped on an unexpected error; nothing was applied. Try again."
INTERRUPTED = "The worker stopped before the import finished; nothing was applied. Try again."

Status = CsvUpload.Status
STAGING = CsvUploadRow._meta.db_table
# One CsvUploadRow as inserted: upload_id, id_type, alias_label, value, then the extras.
StagedValues = tuple[int | str | None, ...]
STAGING_COLUMNS = (
    "upload_id",
    "id_type",
    "alias_label",
    "value",
    *EXTRA_IDENTIFIERS,
    "properties",
)


@dataclass(frozen=True)
class Staged:
    rows: int
    bad: int
    repeats: int  # earlier rows of an identity the file names again


def import_csv_upload(upload_id: int) -> CsvUpload | None:
    """Run one queued upload; None if another job already claimed it."""
    claimed = CsvUpload.objects.filter(pk=upload_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=timezone.now(), error=""
    )
    if not claimed:
        return None
    upload = CsvUpload.objects.select_related("created_by").get(pk=upload_id)
    _clear_staging(upload_id)  # left by an earlier attempt that was killed
    try:
        staged = _stage(upload)
        _apply(upload, staged)
    except CsvFileError as exc:
        mark_failed(upload_id, str(exc))
    except Exception:
        logger.exception("CSV upload %s failed", upload_id)
        mark_failed(upload_id, INTERNAL_ERROR)
        raise
    finally:
        discard_source(upload_id)
    upload.refresh_from_db()
    return upload


def mark_failed(upload_id: int, message: str) -> bool:
    """Fail an unfinished upload and drop its staged rows; False if it had already finished."""
    with transaction.atomic():
        failed = CsvUpload.objects.filter(
            pk=upload_id, status__in=[Status.QUEUED, Status.RUNNING]
        ).update(status=Status.FAILED, error=message, finished_at=timezone.now())
        _clear_staging(upload_id)
    return bool(failed)


def fail_interrupted_upload(upload_id: int) -> None:
    """For a job that died without finishing (timeout, abandoned by a killed worker)."""
    if mark_failed(upload_id, INTERRUPTED):
        discard_source(upload_id)


def discard_source(upload_id: int) -> None:
    """Delete the uploaded file once it has been used; the bad-rows file stays."""
    path = CsvUpload.objects.filter(pk=upload_id).values_list("stored_path", flat=True).first()
    if path:
        default_storage.delete(path)
        CsvUpload.objects.filter(pk=upload_id).update(stored_path="")


def _clear_staging(upload_id: int) -> None:
    CsvUploadRow.objects.filter(upload_id=upload_id).delete()


def _stage(upload: CsvUpload) -> Staged:
    rows = bad = 0
    pending: list[StagedValues] = []
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as bad_file:
        # Safe to open in a spreadsheet: a row's raw text may start with "=" (core.csv_export).
        bad_rows = SafeWriter(bad_file)
        bad_rows.writerow(["line", "reason", "raw"])
        try:
            with default_storage.open(upload.stored_path, "rb") as binary:
                lines = Lines(binary)
                records = read_csv_records(lines)
                header = parse_header(records)
                for record in records:
                    rows += 1
                    try:
                        row = parse_row(header, record)
                    except BadRow as exc:
                        bad += 1
                        bad_rows.writerow([record.line, exc.reason, raw_text(record)])
                    else:
                        extras = (row.extras[name] for name in EXTRA_IDENTIFIERS)
                        properties = None if row.properties is None else json.dumps(row.properties)
                        pending.append(
                            (
                                upload.pk,
                                header.id_type,
                                row.alias_label,
                                row.value,
                                *extras,
                                properties,
                            )
                        )
                    if rows % CHUNK_ROWS == 0:
                        _commit_chunk(upload.pk, pending, lines.bytes_read, rows, bad)
                        pending = []
                _commit_chunk(upload.pk, pending, lines.bytes_read, rows, bad)
        finally:
            if bad:
                _save_bad_rows(upload.pk, bad_file)
    repeats = _delete_repeats(upload.pk)
    return Staged(rows=rows, bad=bad, repeats=repeats)


def _commit_chunk(
    upload_id: int, chunk: list[StagedValues], bytes_done: int, rows: int, bad: int
) -> None:
    with transaction.atomic():
        if chunk:
            _insert_staged(chunk)
        CsvUpload.objects.filter(pk=upload_id).update(
            bytes_done=bytes_done, rows_done=rows, rows_bad=bad
        )
    _forget_queries()


def _insert_staged(chunk: list[StagedValues]) -> None:
    columns = ", ".join(STAGING_COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY streams the rows; one INSERT of 5,000 rows would be 55,000 placeholders for
            # Django to compile and psycopg to parse, which costs more than the database's work.
            with cursor.cursor.copy(f"COPY {STAGING} ({columns}) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(STAGING_COLUMNS))
            cursor.executemany(
                f"INSERT INTO {STAGING} ({columns}) VALUES ({placeholders})",  # noqa: S608
                chunk,
            )


def _delete_repeats(upload_id: int) -> int:
    """Last row wins: drop every staged row that a later row of the same identity repeats."""
    # Only the table name is interpolated; values travel as parameters.
    sql = (
        f"DELETE FROM {STAGING} WHERE upload_id = %s AND EXISTS ("  # noqa: S608
        f"SELECT 1 FROM {STAGING} later WHERE later.upload_id = {STAGING}.upload_id "
        f"AND later.id_type = {STAGING}.id_type AND later.alias_label = {STAGING}.alias_label "
        f"AND later.value = {STAGING}.value AND later.id > {STAGING}.id)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [upload_id])
        return int(cursor.rowcount)


def _forget_queries() -> None:
    if settings.DEBUG:
        # DEBUG keeps every statement in memory, and a worker has no request to clear them.
        reset_queries()


def _save_bad_rows(upload_id: int, bad_file: IO[str]) -> None:
    bad_file.seek(0)
    path = default_storage.save(f"uploads/{uuid.uuid4().hex}-bad-rows.csv", File(bad_file))
    CsvUpload.objects.filter(pk=upload_id).update(bad_rows_path=path)


def _apply(upload: CsvUpload, staged: Staged) -> None:
    good = staged.rows - staged.bad
    if staged.rows and not good:
        raise CsvFileError(
            f"None of the {staged.rows} rows could be used (see the bad rows); nothing was applied."
        )
    pause = float(os.environ.get(TEST_APPLY_PAUSE_ENV) or 0)
    with transaction.atomic():
        cohort = Cohort.objects.select_for_update().get(pk=upload.cohort_id)
        counts = ChangeCounts(ignored=staged.repeats)
        analyze_at = max(2 * cohort.member_count, ANALYZE_FROM_MEMBERS)
        for number, identities in enumerate(_staged_identities(upload.pk), start=1):
            if upload.mode == CsvUpload.Mode.REMOVE:
                counts += remove_members(cohort.pk, identities)
            else:
                counts += add_members(cohort.pk, identities, update_extras=True)
                if cohort.member_count + counts.added >= analyze_at:
                    _refresh_member_statistics()
                    analyze_at = 2 * (cohort.member_count + counts.added)
            _forget_queries()
            if pause:
                logger.warning("CSV upload %s: applied chunk %s; test pause", upload.pk, number)
                time.sleep(pause)
        if upload.mode == CsvUpload.Mode.REPLACE:
            counts.removed += _remove_absent(cohort.pk, upload.pk)
        record_change(cohort.pk, counts)
        _clear_staging(upload.pk)
        CsvUpload.objects.filter(pk=upload.pk).update(
            status=Status.SUCCEEDED,
            added=counts.added,
            removed=counts.removed,
            ignored=counts.ignored,
            bytes_done=upload.size_bytes,
            finished_at=timezone.now(),
        )
        audit.record(
            actor=upload.created_by,
            action="cohort.csv_applied",
            target=cohort,
            details={
                "upload": upload.pk,
                "mode": upload.mode,
                "added": counts.added,
                "removed": counts.removed,
                "ignored": counts.ignored,
                "rows": staged.rows,
                "bad_rows": staged.bad,
            },
        )


def _refresh_member_statistics() -> None:
    """PostgreSQL plans membership's batch lookups from table statistics; taken before this
    transaction, they hold the cohort growing inside it to be tiny, and each batch of 1,000 then
    scans the whole cohort (a million rows took minutes). ANALYZE inside the transaction counts
    its own rows. It waits for no lock: if another ANALYZE runs, the old statistics stay."""
    if connection.vendor != "postgresql":
        return  # SQLite plans these lookups the same way whatever its statistics say
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '200ms'")
            cursor.execute(f"ANALYZE {CohortMember._meta.db_table}")
            cursor.execute("SET LOCAL lock_timeout TO DEFAULT")
    except OperationalError:
        logger.info("Skipped refreshing member statistics: the table is being analyzed")


def _staged_identities(upload_id: int) -> Iterator[list[Identity]]:
    """The staged rows in chunks, keyset-paged by id: never all of them in memory."""
    last_id = 0
    while True:
        page = list(
            CsvUploadRow.objects.filter(upload_id=upload_id, id__gt=last_id)
            .order_by("id")
            .values_list("id", "id_type", "alias_label", "value", "properties", *EXTRA_IDENTIFIERS)[
                :CHUNK_ROWS
            ]
        )
        if not page:
            return
        last_id = page[-1][0]
        yield [
            Identity(
                id_type,
                value,
                label,
                extras=tuple((n, v) for n, v in zip(EXTRA_IDENTIFIERS, extras, strict=True) if v),
                properties=properties,
            )
            for _, id_type, label, value, properties, *extras in page
        ]


def _remove_absent(cohort_id: int, upload_id: int) -> int:
    """Replace: delete the cohort's members the file does not name, in one statement."""
    members = CohortMember._meta.db_table
    # Only table names are interpolated; values travel as parameters.
    sql = (
        f"DELETE FROM {members} WHERE cohort_id = %s AND NOT EXISTS ("  # noqa: S608
        f"SELECT 1 FROM {STAGING} s WHERE s.upload_id = %s AND s.id_type = {members}.id_type "
        f"AND s.alias_label = {members}.alias_label AND s.value = {members}.value)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [cohort_id, upload_id])
        return int(cursor.rowcount)
