"""Security issue #13, finding 8: a quote that is never closed makes the CSV reader take the rest
of the file as one field. The bad row says so, with the line the quote opened on, instead of a
parser message (or nothing)."""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from cohorts.csv_import import import_csv_upload
from cohorts.csv_rows import read_records
from cohorts.models import Cohort, CohortMember, CsvUpload

pytestmark = pytest.mark.django_db


def records(text):
    return [(r.line, r.fields, r.error) for r in read_records(io.StringIO(text))]


def test_a_quote_left_open_to_the_end_of_the_file_is_named_with_its_line():
    text = 'external_id\na\n"b\nc\nd\n'
    assert records(text) == [
        (1, ["external_id"], ""),
        (2, ["a"], ""),
        (3, [], "unterminated quote starting at line 3: the rest of the file (lines 3 to 5) "
         "was read as one row"),
    ]  # fmt: skip


def test_a_quote_open_on_the_last_line_is_named_too():
    assert records('external_id\na\n"b')[-1] == (3, [], "unterminated quote starting at line 3")


def test_a_quote_closed_by_a_stray_quote_lines_later_names_the_lines_it_swallowed():
    text = 'external_id\na\n"b\nc\n"d\ne\n'
    assert records(text) == [
        (1, ["external_id"], ""),
        (2, ["a"], ""),
        (3, [], "unterminated quote starting at line 3: lines 3 to 5 were read as one row "
         "(',' expected after '\"')"),
        (6, ["e"], ""),
    ]  # fmt: skip


def test_a_bad_quote_inside_one_line_keeps_its_own_message():
    assert records('external_id\n"bad"quote\nok\n')[1] == (
        2,
        [],
        "not valid CSV (',' expected after '\"')",
    )


def test_a_quoted_line_break_that_closes_properly_is_still_one_good_record():
    assert records('external_id\n"multi\nline"\nnext\n') == [
        (1, ["external_id"], ""),
        (2, ["multi\nline"], ""),
        (4, ["next"], ""),
    ]


def test_an_upload_reports_the_unterminated_quote_as_its_bad_rows_reason(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    cohort = Cohort.objects.create(name="Quotes", source=Cohort.Source.CSV)
    data = b'external_id\ngood-1\ngood-2\n"oops\ngood-3\ngood-4\n'
    upload = CsvUpload.objects.create(
        cohort=cohort,
        mode=CsvUpload.Mode.ADD,
        file_name="quotes.csv",
        stored_path=default_storage.save("uploads/quotes.csv", ContentFile(data)),
        size_bytes=len(data),
    )
    upload = import_csv_upload(upload.pk)
    assert upload is not None and upload.status == CsvUpload.Status.SUCCEEDED
    assert set(CohortMember.objects.values_list("value", flat=True)) == {"good-1", "good-2"}
    assert upload.rows_bad == 1
    with default_storage.open(upload.bad_rows_path, "rb") as handle:
        content = handle.read().decode()
    assert (
        "4,unterminated quote starting at line 4: the rest of the file (lines 4 to 6) "
        "was read as one row"
    ) in content
