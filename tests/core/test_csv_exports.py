"""Security issue #13, finding 3: every CSV the product hands out neutralises cells a spreadsheet
would run as formulas. The test walks the URL patterns: a new CSV endpoint fails it until it is
given a case here (and writes through core.csv_export)."""

import csv
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from cohorts.csv_import import import_csv_upload
from cohorts.models import Cohort, CsvUpload
from core.csv_export import SafeWriter, csv_lines, safe_cell
from syncs.models import SyncRun, SyncRunError
from tests.factories import make_run, make_sync

pytestmark = pytest.mark.django_db

HOSTILE = [
    "=cmd|' /C calc'!A0",
    "+1+2",
    "-2+3",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    '=HYPERLINK("http://evil.example","click")',
    "  =1+1",
]


def csv_patterns(resolver: URLResolver | None = None, prefix: str = "", namespace: str = ""):
    """(name, route) of every URL pattern that serves a CSV: its route ends in .csv or its
    name says csv."""
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from csv_patterns(pattern, route, inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}{pattern.name}" if pattern.name else route
            if ".csv" in route or "csv" in (pattern.name or ""):
                yield name, route


def rows_of(response):
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def cells(rows):
    return [cell for row in rows for cell in row]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def upload_bad_rows_url():
    """A real import of a file whose identifiers are formulas: each is a bad row (the file also
    has one good row, so the import succeeds)."""
    cohort = Cohort.objects.create(name="Hostile", source=Cohort.Source.CSV)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["external_id", "idfa"])
    writer.writerow(["good-1", ""])
    for value in HOSTILE:
        writer.writerow([value, "x" * 100])  # idfa too long: a bad row carrying the value
    data = out.getvalue().encode()
    upload = CsvUpload.objects.create(
        cohort=cohort,
        mode=CsvUpload.Mode.ADD,
        file_name="hostile.csv",
        stored_path=default_storage.save("uploads/hostile.csv", ContentFile(data)),
        size_bytes=len(data),
    )
    upload = import_csv_upload(upload.pk)
    assert upload is not None and upload.status == CsvUpload.Status.SUCCEEDED
    assert upload.rows_bad == len(HOSTILE)
    return reverse("cohorts:upload_bad_rows", args=[cohort.pk, upload.pk])


def run_errors_url():
    run = make_run(make_sync(), status=SyncRun.Status.FAILED, finished_at=timezone.now())
    SyncRunError.objects.bulk_create(
        SyncRunError(run=run, operation="add", member=value, reason=value) for value in HOSTILE
    )
    return reverse("syncs:run_errors_csv", args=[run.sync_id, run.pk])


# Every CSV endpoint, and how to give it hostile cells.
CASES = {
    "cohorts:upload_bad_rows": upload_bad_rows_url,
    "syncs:run_errors_csv": run_errors_url,
}


def test_every_csv_endpoint_has_a_case_here():
    found = {name for name, _ in csv_patterns()}
    assert found == set(CASES), (
        "A CSV endpoint changed: write it through core.csv_export and give it a case in CASES"
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_csv_endpoint_neutralises_formulas(name, viewer_client):
    rows = rows_of(viewer_client.get(CASES[name]()))
    written = cells(rows)
    text = "\n".join(written)
    for value in HOSTILE:  # each is there (a bad row's raw text is CSV, its quotes doubled)...
        assert value in text or value.replace('"', '""') in text, (name, value)
    # ... and no cell starts as a formula.
    assert not [cell for cell in written if cell.lstrip(" ").startswith(("=", "+", "-", "@"))]
    assert not [cell for cell in written if cell.startswith(("\t", "\r"))]


def test_a_bad_rows_file_stored_before_the_fix_comes_out_neutralised(viewer_client):
    cohort = Cohort.objects.create(name="Old", source=Cohort.Source.CSV)
    legacy = "line,reason,raw\r\n3,external_id is empty,=cmd|' /C calc'!A0\r\n"
    upload = CsvUpload.objects.create(
        cohort=cohort,
        mode=CsvUpload.Mode.ADD,
        file_name="old.csv",
        status=CsvUpload.Status.SUCCEEDED,
        bad_rows_path=default_storage.save("uploads/old-bad.csv", ContentFile(legacy.encode())),
    )
    rows = rows_of(
        viewer_client.get(reverse("cohorts:upload_bad_rows", args=[cohort.pk, upload.pk]))
    )
    assert rows == [["line", "reason", "raw"], ["3", "external_id is empty", "'=cmd|' /C calc'!A0"]]


@pytest.mark.parametrize("value", HOSTILE)
def test_safe_cell_quotes_what_a_spreadsheet_would_run(value):
    assert safe_cell(value) == f"'{value}"


@pytest.mark.parametrize(
    "value", ["external_id:plain", "a=b", "user@example.com", "", "'=already quoted", 400]
)
def test_safe_cell_leaves_everything_else(value):
    assert safe_cell(value) == str(value)


def test_safe_cell_is_idempotent():
    for value in HOSTILE:
        assert safe_cell(safe_cell(value)) == safe_cell(value)


def test_the_writer_and_the_lines_quote_every_cell():
    out = io.StringIO()
    SafeWriter(out).writerow(["=1+1", "ok", None, 5])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["'=1+1", "ok", "", "5"]]
    lines = list(csv_lines(["=h"], [["@x"], ["y"]]))
    assert list(csv.reader(io.StringIO("".join(lines)))) == [["'=h"], ["'@x"], ["y"]]
