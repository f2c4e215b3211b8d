"""The CSV of a run's failed and skipped members: every row, streamed, safe to open in a
spreadsheet, readable by every role and by nobody else."""

import csv
import io

import pytest
import requests
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cohorts.membership import Identity
from syncs.models import SyncRun, SyncRunError
from syncs.pages.run_export import EXPORT_CHUNK, HEADER, safe_cell
from syncs.services import start_run
from tests.factories import make_cohort, make_run, make_sync
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def sync():
    return make_sync()


@pytest.fixture
def run(sync):
    return make_run(sync, status=SyncRun.Status.PARTIALLY_FAILED, finished_at=timezone.now())


def url(run):
    return reverse("syncs:run_errors_csv", args=[run.sync_id, run.pk])


def download(client, run):
    response = client.get(url(run))
    assert response.status_code == 200, response.status_code
    body = b"".join(response.streaming_content).decode()
    return response, list(csv.reader(io.StringIO(body)))


def test_a_viewer_downloads_every_failed_and_skipped_member_with_its_reason(viewer_client, run):
    SyncRunError.objects.bulk_create(
        [
            SyncRunError(
                run=run,
                operation="add",
                member=f"external_id:bad-{n:04d}",
                reason="Invalid attribute object",
                partner_status=201,
            )
            for n in range(EXPORT_CHUNK + 500)  # more than one chunk
        ]
        + [
            SyncRunError(
                run=run, operation="add", member="device_id:d1", reason="No usable identifier (x)"
            ),
            SyncRunError(
                run=run, operation="remove", member="external_id:gone", reason="Timed out"
            ),
        ]
    )

    response, rows = download(viewer_client, run)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="sync-{run.sync_id}-run-{run.pk}-errors.csv"'
    )
    assert rows[0] == HEADER
    assert len(rows) == 1 + EXPORT_CHUNK + 502
    first = dict(zip(HEADER, rows[1], strict=True))
    assert first["operation"] == "add"
    assert first["member"] == "external_id:bad-0000"
    assert first["outcome"] == "failed"
    assert first["reason"] == "Invalid attribute object"
    assert first["partner_status"] == "201"
    assert first["at"].startswith(str(timezone.now().year))
    assert rows[-2][:5] == ["add", "device_id:d1", "skipped", "No usable identifier (x)", ""]
    assert rows[-1][:3] == ["remove", "external_id:gone", "failed"]
    members = [row[1] for row in rows[1:]]
    assert len(set(members)) == len(members)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("external_id:plain", "external_id:plain"),
        (None, ""),
        (400, "400"),
    ],
)
def test_a_cell_that_a_spreadsheet_would_run_is_quoted(raw, shown):
    assert safe_cell(raw) == shown


def test_member_and_reason_cells_from_partners_cannot_inject_formulas(viewer_client, run):
    SyncRunError.objects.create(
        run=run, operation="add", member="=cmd|' /C calc'!A0:x", reason="-1+1", partner_status=400
    )
    _, rows = download(viewer_client, run)
    assert rows[1][1] == "'=cmd|' /C calc'!A0:x"
    assert rows[1][3] == "'-1+1"


def test_a_run_without_errors_exports_the_header_only(viewer_client, run):
    _, rows = download(viewer_client, run)
    assert rows == [HEADER]


def test_the_export_costs_the_same_queries_for_ten_or_five_thousand_rows(viewer_client, run):
    def queries():
        with CaptureQueriesContext(db) as captured:
            download(viewer_client, run)
        return len(captured)

    errors = [
        SyncRunError(run=run, operation="add", member=f"m{n}", reason="r") for n in range(5_000)
    ]
    SyncRunError.objects.bulk_create(errors[:10])
    few = queries()
    SyncRunError.objects.bulk_create(errors[10:])
    assert queries() == few


def test_outsiders_get_404_and_another_syncs_run_is_not_found(outsider_client, viewer_client, run):
    assert outsider_client.get(url(run)).status_code == 404
    other = make_sync(name="Other")
    assert (
        viewer_client.get(reverse("syncs:run_errors_csv", args=[other.pk, run.pk])).status_code
        == 404
    )
    missing = reverse("syncs:run_errors_csv", args=[run.sync_id, run.pk + 1000])
    assert viewer_client.get(missing).status_code == 404


def test_the_export_only_answers_get(marketer_client, run):
    SyncRunError.objects.create(run=run, operation="add", member="m", reason="r")
    assert marketer_client.post(url(run)).status_code == 405
    assert SyncRunError.objects.filter(run=run).count() == 1


def test_the_run_page_links_the_export_when_there_is_something_to_export(viewer_client, run):
    page = reverse("syncs:run_detail", args=[run.sync_id, run.pk])
    assert url(run) not in viewer_client.get(page).content.decode()
    SyncRunError.objects.create(run=run, operation="add", member="m", reason="r")
    assert url(run) in viewer_client.get(page).content.decode()


@pytest.mark.usefixtures("rq_redis")
def test_a_real_partially_failed_run_exports_every_member_braze_refused(
    viewer_client, connection, sandbox
):
    refused = [f"u{n:03d}" for n in range(0, 120, 7)]
    requests.post(
        f"{sandbox.url}/_sandbox/braze/rejections",
        json={
            "identifiers": [f"external_id:{value}" for value in refused],
            "error": "Invalid external_id",
        },
        timeout=5,
    ).raise_for_status()
    members = [f"u{n:03d}" for n in range(120)] + [Identity("device_id", "dev-1")]
    sync = make_sync(cohort=make_cohort(members=members), connection=connection)

    started, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    run_jobs()
    started.refresh_from_db()
    assert started.status == SyncRun.Status.PARTIALLY_FAILED
    assert (started.added, started.failed, started.skipped) == (120 - len(refused), 18, 1)

    _, rows = download(viewer_client, started)

    failed = {row[1]: row for row in rows[1:] if row[2] == "failed"}
    assert set(failed) == {f"external_id:{value}" for value in refused}
    assert {row[3] for row in failed.values()} == {"Invalid external_id"}
    assert {row[4] for row in failed.values()} == {"201"}
    [skipped] = [row for row in rows[1:] if row[2] == "skipped"]
    assert skipped[1] == "device_id:dev-1"
