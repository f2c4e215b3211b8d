"""CSV import: the parser, the three modes, bad rows, fatal files, duplicates and the job's
bookkeeping (claim, progress, cleanup, audit)."""

import csv
import io
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from cohorts import csv_import
from cohorts.csv_import import INTERRUPTED, import_csv_upload
from cohorts.jobs import import_csv, import_csv_failed
from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort, CohortMember, CohortSizeSample, CsvUpload, CsvUploadRow
from cohorts.upload_reaper import reap_stuck_uploads
from cohorts.uploads import QUEUE_UNREACHABLE, start_csv_upload
from core.models import AuditEntry
from tests.factories import make_cohort
from tests.jobs import run_jobs
from tests.queues import queues_at

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def cohort():
    return make_cohort(name="Lapsed buyers", source=Cohort.Source.CSV)


def queue_upload(cohort, content, mode="add", user=None):
    """An upload as start_csv_upload leaves it, without the queue."""
    data = content.encode() if isinstance(content, str) else content
    path = default_storage.save("uploads/test.csv", ContentFile(data))
    return CsvUpload.objects.create(
        cohort=cohort,
        mode=mode,
        file_name="test.csv",
        stored_path=path,
        size_bytes=len(data),
        created_by=user,
    )


def run(upload):
    result = import_csv_upload(upload.pk)
    assert result is not None
    return result


def values(cohort):
    return set(CohortMember.objects.filter(cohort=cohort).values_list("value", flat=True))


def seed(cohort, *names):
    apply_changes(cohort.pk, add=[Identity("external_id", name) for name in names])
    cohort.refresh_from_db()


def bad_rows_of(upload):
    with default_storage.open(upload.bad_rows_path, "rb") as handle:
        return list(csv.reader(io.StringIO(handle.read().decode())))


def test_a_good_file_adds_its_members_with_their_extra_identifiers(cohort):
    upload = run(
        queue_upload(
            cohort,
            "external_id,braze_id,idfa,idfv,gaid,oaid,amplitude_id\n"
            "u1,b1,A-1,V-1,G-1,O-1,amp-1\n"
            "u2,,,,G-2,,\n",
        )
    )
    assert upload.status == CsvUpload.Status.SUCCEEDED
    assert (upload.added, upload.removed, upload.ignored, upload.rows_done) == (2, 0, 0, 2)
    assert upload.rows_bad == 0 and upload.bad_rows_path == ""
    first = CohortMember.objects.get(cohort=cohort, value="u1")
    assert (first.id_type, first.braze_id, first.idfa, first.idfv) == (
        "external_id",
        "b1",
        "A-1",
        "V-1",
    )
    assert (first.gaid, first.oaid, first.amplitude_id) == ("G-1", "O-1", "amp-1")
    second = CohortMember.objects.get(cohort=cohort, value="u2")
    assert (second.gaid, second.braze_id, second.idfa) == ("G-2", None, None)
    cohort.refresh_from_db()
    assert cohort.member_count == 2


def test_add_refreshes_the_extra_identifiers_of_members_already_present(cohort):
    seed(cohort, "u1")
    upload = run(queue_upload(cohort, "external_id,gaid\nu1,G-new\nu2,\n"))
    assert (upload.added, upload.ignored) == (1, 1)
    assert CohortMember.objects.get(cohort=cohort, value="u1").gaid == "G-new"


def test_replace_makes_the_cohort_exactly_the_file_and_counts_each_change(cohort):
    seed(cohort, "a", "b", "c")
    upload = run(queue_upload(cohort, "external_id\nb\nc\nd\n", mode="replace"))
    assert upload.status == CsvUpload.Status.SUCCEEDED
    assert (upload.added, upload.removed, upload.ignored) == (1, 1, 2)
    assert values(cohort) == {"b", "c", "d"}
    cohort.refresh_from_db()
    assert cohort.member_count == 3


def test_replace_keeps_members_of_another_identifier_type_only_if_named(cohort):
    apply_changes(cohort.pk, add=[Identity("device_id", "x"), Identity("external_id", "x")])
    run(queue_upload(cohort, "device_id\nx\n", mode="replace"))
    assert list(CohortMember.objects.filter(cohort=cohort).values_list("id_type", "value")) == [
        ("device_id", "x")
    ]


def test_a_replace_with_only_a_header_empties_the_cohort(cohort):
    seed(cohort, "a", "b")
    upload = run(queue_upload(cohort, "external_id\n", mode="replace"))
    assert upload.status == CsvUpload.Status.SUCCEEDED
    assert (upload.added, upload.removed, upload.rows_done) == (0, 2, 0)
    assert values(cohort) == set()
    cohort.refresh_from_db()
    assert cohort.member_count == 0


def test_remove_takes_out_the_named_members_and_ignores_the_rest(cohort):
    seed(cohort, "a", "b", "c")
    upload = run(queue_upload(cohort, "external_id,gaid\na,G\nzzz,\n", mode="remove"))
    assert (upload.added, upload.removed, upload.ignored) == (0, 1, 1)
    assert values(cohort) == {"b", "c"}
    cohort.refresh_from_db()
    assert cohort.member_count == 2


def test_device_ids_and_user_aliases_are_imported_as_their_own_identities(cohort):
    run(queue_upload(cohort, "device_id,idfv\ndev-1,V\n"))
    run(
        queue_upload(
            cohort, "alias_label,alias_name\nemail,ann@example.com\nphone,ann@example.com\n"
        )
    )
    members = set(
        CohortMember.objects.filter(cohort=cohort).values_list("id_type", "alias_label", "value")
    )
    assert members == {
        ("device_id", "", "dev-1"),
        ("user_alias", "email", "ann@example.com"),
        ("user_alias", "phone", "ann@example.com"),
    }


def test_a_utf8_bom_header_case_spaces_and_crlf_line_ends_are_accepted(cohort):
    upload = run(queue_upload(cohort, "\ufeff External_ID , GAID\r\n u1 , G1 \r\n".encode()))
    assert upload.status == CsvUpload.Status.SUCCEEDED
    member = CohortMember.objects.get(cohort=cohort)
    assert (member.value, member.gaid) == ("u1", "G1")


def test_bad_rows_are_skipped_and_reported_with_line_and_reason_and_the_good_rows_apply(cohort):
    long_value = "x" * 256
    content = (
        "external_id,idfa\n"  # line 1
        "good-1,A\n"  # 2
        ",A\n"  # 3: empty identifier
        f"{long_value},\n"  # 4: too long
        "good-2,A,extra\n"  # 5: three fields
        "good-3\n"  # 6: one field
        f"good-4,{'i' * 65}\n"  # 7: idfa longer than its column
        '"multi\nline",A\n'  # 8-9: a quoted line break is one record, on line 8
        '"bad"quote,A\n'  # 10: not valid CSV
        "good-5,\x00\n"  # 11: NUL
        "\n"  # 12: blank lines are skipped
        "good-6,\n"  # 13
    )
    upload = run(queue_upload(cohort, content))
    assert upload.status == CsvUpload.Status.SUCCEEDED
    assert values(cohort) == {"good-1", "good-6", "multi\nline"}
    assert (upload.rows_done, upload.rows_bad, upload.added) == (10, 7, 3)
    rows = bad_rows_of(upload)
    assert rows[0] == ["line", "reason", "raw"]
    assert [(line, reason) for line, reason, _ in rows[1:]] == [
        ("3", "external_id is empty"),
        ("4", "external_id is longer than 255 characters"),
        ("5", "expected 2 fields, found 3"),
        ("6", "expected 2 fields, found 1"),
        ("7", "idfa is longer than 64 characters"),
        ("10", "not valid CSV (',' expected after '\"')"),
        ("11", "contains a NUL character"),
    ]
    assert rows[1][2] == ",A"
    assert rows[3][2] == "good-2,A,extra"


def test_an_alias_row_without_its_label_is_a_bad_row(cohort):
    upload = run(queue_upload(cohort, "alias_name,alias_label\nann,\nbob,email\n"))
    assert bad_rows_of(upload)[1][:2] == ["2", "alias_label is empty"]
    assert values(cohort) == {"bob"}


FATAL_FILES = [
    (b"", "The file is empty"),
    (b"\n\n", "The file is empty"),
    (b"braze_id,gaid\nb1,g1\n", "no identifier column"),
    (b"external_id,device_id\na,b\n", "2 identifier columns (external_id, device_id)"),
    (b"alias_name\nann\n", "alias_name needs an alias_label column"),
    (b"external_id,alias_label\na,b\n", "alias_label is only used with alias_name"),
    (b"external_id, ,plan\na,b,c\n", "A column of the header has no name"),
    (b"external_id,gaid,GAID\na,b,c\n", "The column gaid appears twice"),
    (b"external_id\nb\xe9atrice\n", "not UTF-8 text (line 2)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text (line 1)"),
    (b'"external_id"x,gaid\na,b\n', "The file is not CSV"),
    (b"external_id\x00\na\n", "The file is not CSV"),
    (b"external_id\n,\n\n,\n", "None of the 2 rows could be used"),
]


@pytest.mark.parametrize(("content", "message"), FATAL_FILES)
def test_a_fatal_file_fails_with_a_clear_message_and_applies_nothing(cohort, content, message):
    seed(cohort, "keep-1", "keep-2")
    upload = run(queue_upload(cohort, content, mode="replace"))
    assert upload.status == CsvUpload.Status.FAILED
    assert message in upload.error
    assert values(cohort) == {"keep-1", "keep-2"}
    cohort.refresh_from_db()
    assert cohort.member_count == 2
    assert not CsvUploadRow.objects.exists()
    assert not AuditEntry.objects.filter(action="cohort.csv_applied").exists()
    assert upload.stored_path == "" and upload.finished_at is not None


def test_a_file_that_turns_out_not_utf8_after_chunks_were_staged_applies_nothing(
    cohort, monkeypatch
):
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 2)
    seed(cohort, "keep")
    content = b"external_id\na\nb\nc\nd\n  \ne\xff\n"
    upload = run(queue_upload(cohort, content, mode="replace"))
    assert upload.status == CsvUpload.Status.FAILED
    assert "line 7" in upload.error
    assert values(cohort) == {"keep"}
    assert not CsvUploadRow.objects.exists()
    # The bad rows met before the fatal line are still there to download.
    assert bad_rows_of(upload)[1][:2] == ["6", "external_id is empty"]


def test_the_last_row_of_a_repeated_identity_wins_and_the_earlier_ones_count_as_ignored(
    cohort, monkeypatch
):
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 2)  # repeats within a chunk and across chunks
    content = "external_id,gaid,idfv\nu1,G-1,V-1\nu1,G-2,\nu2,X,\nu3,,\nu1,G-3,\n"
    upload = run(queue_upload(cohort, content))
    assert (upload.added, upload.ignored, upload.rows_done) == (3, 2, 5)
    member = CohortMember.objects.get(cohort=cohort, value="u1")
    assert (member.gaid, member.idfv) == ("G-3", None)


def test_progress_is_committed_per_chunk_and_ends_at_the_file_size(cohort, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 2)
    seen = []
    commit = csv_import._commit_chunk

    def spy(upload_id, pending, bytes_done, rows, bad):
        commit(upload_id, pending, bytes_done, rows, bad)
        seen.append(CsvUpload.objects.values_list("bytes_done", "rows_done", "rows_bad").get())

    monkeypatch.setattr(csv_import, "_commit_chunk", spy)
    content = "external_id\na\n,\nc\nd\ne\n"
    upload = run(queue_upload(cohort, content))
    assert seen == [(16, 2, 1), (20, 4, 1), (22, 5, 1)]
    assert upload.bytes_done == upload.size_bytes == len(content)
    assert upload.percent == 100


def test_member_statistics_are_refreshed_each_time_the_cohort_doubles(cohort, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 2)
    monkeypatch.setattr(csv_import, "ANALYZE_FROM_MEMBERS", 2)
    sizes = []
    refresh = csv_import._refresh_member_statistics

    def spy():
        sizes.append(CohortMember.objects.filter(cohort=cohort).count())
        refresh()  # runs ANALYZE on PostgreSQL, inside the test's transaction

    monkeypatch.setattr(csv_import, "_refresh_member_statistics", spy)
    content = "external_id\n" + "".join(f"u{n}\n" for n in range(9))
    upload = run(queue_upload(cohort, content))
    assert upload.added == 9
    assert sizes == [2, 4, 8]


def test_the_change_is_recorded_in_the_size_history_and_the_audit_log(cohort, marketer):
    upload = run(queue_upload(cohort, "external_id\na\nb\n,\n", mode="replace", user=marketer))
    assert CohortSizeSample.objects.get(cohort=cohort).member_count == 2
    entry = AuditEntry.objects.get(action="cohort.csv_applied")
    assert entry.actor == marketer
    assert (entry.target_type, entry.target_id) == ("cohort", str(cohort.pk))
    assert entry.details == {
        "upload": upload.pk,
        "mode": "replace",
        "added": 2,
        "removed": 0,
        "ignored": 0,
        "rows": 3,
        "bad_rows": 1,
    }


def test_the_audit_actor_is_the_system_when_the_uploader_was_deleted(cohort, marketer):
    upload = queue_upload(cohort, "external_id\na\n", user=marketer)
    marketer.delete()
    run(upload)
    entry = AuditEntry.objects.get(action="cohort.csv_applied")
    assert entry.actor is None and entry.actor_label == "system"


def test_the_source_file_is_deleted_after_the_job_and_the_bad_rows_file_kept(cohort):
    upload = queue_upload(cohort, "external_id\na\n,\n")
    source = upload.stored_path
    upload = run(upload)
    assert not default_storage.exists(source)
    assert upload.stored_path == ""
    assert default_storage.exists(upload.bad_rows_path)


def test_a_second_job_for_the_same_upload_does_nothing(cohort):
    upload = queue_upload(cohort, "external_id\na\n")
    assert import_csv(upload.pk) == "succeeded"
    assert import_csv(upload.pk) == "skipped"
    assert AuditEntry.objects.filter(action="cohort.csv_applied").count() == 1


def test_rows_staged_by_a_killed_attempt_are_cleared_before_the_next_one(cohort):
    upload = queue_upload(cohort, "external_id\na\n", mode="replace")
    CsvUploadRow.objects.create(upload=upload, id_type="external_id", value="left-over")
    upload = run(upload)
    assert values(cohort) == {"a"}
    assert upload.added == 1


def test_an_unexpected_error_while_applying_rolls_back_and_fails_the_upload(cohort, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK_ROWS", 2)
    seed(cohort, "old-1", "old-2")
    calls = []
    real_add = csv_import.add_members

    def failing_add(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real_add(*args, **kwargs)

    monkeypatch.setattr(csv_import, "add_members", failing_add)
    upload = queue_upload(cohort, "external_id\nn1\nn2\nn3\n", mode="replace")
    with pytest.raises(RuntimeError):
        import_csv_upload(upload.pk)
    upload.refresh_from_db()
    assert upload.status == CsvUpload.Status.FAILED
    assert "nothing was applied" in upload.error
    assert values(cohort) == {"old-1", "old-2"}
    cohort.refresh_from_db()
    assert cohort.member_count == 2
    assert not CsvUploadRow.objects.exists()


def test_a_job_that_died_is_failed_by_the_rq_failure_callback(cohort):
    upload = queue_upload(cohort, "external_id\na\n")
    CsvUpload.objects.filter(pk=upload.pk).update(status=CsvUpload.Status.RUNNING)
    CsvUploadRow.objects.create(upload=upload, id_type="external_id", value="staged")
    import_csv_failed(SimpleNamespace(args=[upload.pk]), None, RuntimeError, None, None)
    upload.refresh_from_db()
    assert (upload.status, upload.error) == (CsvUpload.Status.FAILED, INTERRUPTED)
    assert not CsvUploadRow.objects.exists()
    assert upload.stored_path == ""


def test_the_failure_callback_leaves_a_finished_upload_alone(cohort):
    upload = run(queue_upload(cohort, "external_id\na\n"))
    import_csv_failed(SimpleNamespace(args=[upload.pk]), None, RuntimeError, None, None)
    upload.refresh_from_db()
    assert upload.status == CsvUpload.Status.SUCCEEDED


def test_start_csv_upload_stores_the_file_audits_and_queues_the_import(cohort, marketer, rq_redis):
    upload = start_csv_upload(
        cohort=cohort,
        mode="add",
        uploaded_file=ContentFile(b"external_id\na\nb\n", name="../../march.csv"),
        actor=marketer,
        ip="203.0.113.9",
    )
    assert upload.status == CsvUpload.Status.QUEUED
    assert upload.file_name == "march.csv"
    assert upload.stored_path.startswith("uploads/") and upload.stored_path.endswith(".csv")
    assert default_storage.exists(upload.stored_path)
    assert upload.size_bytes == 16
    entry = AuditEntry.objects.get(action="cohort.csv_uploaded")
    assert (entry.actor, entry.ip) == (marketer, "203.0.113.9")
    assert entry.details["upload"] == upload.pk
    run_jobs()
    upload.refresh_from_db()
    assert upload.status == CsvUpload.Status.SUCCEEDED
    assert values(cohort) == {"a", "b"}


def test_an_upload_while_the_queue_is_unreachable_keeps_its_file_and_runs_once_it_is_back(
    cohort, marketer, settings, rq_redis
):
    reachable = settings.RQ_QUEUES
    settings.RQ_QUEUES = queues_at("redis://127.0.0.1:9/0", timeout=5)
    upload = start_csv_upload(
        cohort=cohort,
        mode="add",
        uploaded_file=ContentFile(b"external_id\na\n", name="a.csv"),
        actor=marketer,
    )
    assert upload.status == CsvUpload.Status.QUEUED
    assert upload.error == QUEUE_UNREACHABLE
    assert upload.stored_path and default_storage.exists(upload.stored_path)
    assert values(cohort) == set()
    # Redis is back: the upload reaper queues it, and the import runs.
    settings.RQ_QUEUES = reachable
    assert reap_stuck_uploads(now=timezone.now() + timedelta(minutes=5)) == 1
    run_jobs()
    upload.refresh_from_db()
    assert upload.status == CsvUpload.Status.SUCCEEDED
    assert upload.error == ""
    assert values(cohort) == {"a"}


def test_other_columns_are_member_properties_typed_only_where_that_cannot_be_wrong(cohort):
    seed(cohort, "kept")
    upload = run(
        queue_upload(
            cohort,
            "external_id,Plan,seats,vip,zip,renews_at\n"
            "ann,pro,3,true,01234,2027-01-01 09:00:00\n"
            "bob,,2.5,no,,\n",
        )
    )
    assert upload.status == CsvUpload.Status.SUCCEEDED, upload.error
    properties = dict(cohort.members.values_list("value", "properties"))
    assert properties == {
        "kept": None,  # not in the file: its properties stay as they were
        "ann": {
            "Plan": "pro",
            "seats": 3,
            "vip": True,
            "zip": "01234",
            "renews_at": "2027-01-01 09:00:00",
        },
        "bob": {"seats": 2.5, "vip": "no"},  # empty fields are no property
    }
    # A later file with property columns replaces them; one without leaves them.
    run(queue_upload(cohort, "external_id,Plan\nann,team\n"))
    run(queue_upload(cohort, "external_id\nbob\n"))
    properties = dict(cohort.members.values_list("value", "properties"))
    assert properties["ann"] == {"Plan": "team"}
    assert properties["bob"] == {"seats": 2.5, "vip": "no"}
