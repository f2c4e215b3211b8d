"""CSV upload pages: access for every role, uploading through the form, the progress partial and
the bad-rows download."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cohorts.models import Cohort, CohortMember, CsvUpload
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
    return make_cohort(name="Winter sale", source=Cohort.Source.CSV)


@pytest.fixture
def upload(cohort):
    path = default_storage.save(
        "uploads/bad.csv", ContentFile(b"line,reason,raw\n3,external_id is empty,\n")
    )
    return CsvUpload.objects.create(
        cohort=cohort,
        mode="add",
        file_name="winter.csv",
        size_bytes=1000,
        status=CsvUpload.Status.SUCCEEDED,
        rows_done=1200,
        rows_bad=1,
        added=1199,
        bad_rows_path=path,
        finished_at=timezone.now(),
    )


def urls(upload):
    args = [upload.cohort_id, upload.pk]
    return {
        "create": reverse("cohorts:upload_create", args=[upload.cohort_id]),
        "detail": reverse("cohorts:upload_detail", args=args),
        "progress": reverse("cohorts:upload_progress", args=args),
        "bad_rows": reverse("cohorts:upload_bad_rows", args=args),
    }


VIEWS = ["create", "detail", "progress", "bad_rows"]


def csv_file(content=b"external_id\na\n", name="members.csv"):
    return SimpleUploadedFile(name, content, content_type="text/csv")


@pytest.mark.parametrize("view", VIEWS)
def test_every_upload_page_sends_anonymous_visitors_to_the_login_page(upload, view):
    response = Client().get(urls(upload)[view])
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("view", VIEWS)
def test_every_upload_page_is_a_404_for_a_user_without_a_role(upload, view, outsider_client):
    assert outsider_client.get(urls(upload)[view]).status_code == 404


def test_a_viewer_may_not_open_or_post_the_upload_form(upload, viewer_client):
    url = urls(upload)["create"]
    assert viewer_client.get(url).status_code == 403
    response = viewer_client.post(url, {"mode": "replace", "file": csv_file()})
    assert response.status_code == 403
    assert CsvUpload.objects.count() == 1


@pytest.mark.parametrize("view", ["detail", "progress", "bad_rows"])
def test_a_viewer_reads_an_upload_its_progress_and_its_bad_rows(upload, view, viewer_client):
    assert viewer_client.get(urls(upload)[view]).status_code == 200


@pytest.mark.parametrize("view", ["detail", "progress", "bad_rows"])
def test_an_upload_under_another_cohort_id_is_a_404(upload, view, marketer_client):
    other = Cohort.objects.create(name="Other", source=Cohort.Source.MANUAL)
    url = reverse(f"cohorts:upload_{view}", args=[other.pk, upload.pk])
    assert marketer_client.get(url).status_code == 404


def test_the_upload_form_explains_each_mode_and_the_accepted_columns(cohort, marketer_client):
    response = marketer_client.get(reverse("cohorts:upload_create", args=[cohort.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'enctype="multipart/form-data"' in html
    for mode in ("replace", "add", "remove"):
        assert f'id="mode-{mode}"' in html
    assert "anyone not in the file is removed" in html
    for column in ("external_id", "device_id", "alias_name", "alias_label", "braze_id", "oaid"):
        assert f"<code>{column}</code>" in html


def test_a_marketer_uploads_through_the_form_and_the_worker_imports_it(
    cohort, marketer, marketer_client, rq_redis
):
    response = marketer_client.post(
        reverse("cohorts:upload_create", args=[cohort.pk]),
        {"mode": "add", "file": csv_file(b"external_id,gaid\na,G\nb,\n,\n")},
    )
    upload = CsvUpload.objects.get()
    detail = reverse("cohorts:upload_detail", args=[cohort.pk, upload.pk])
    assert response.status_code == 302 and response["Location"] == detail
    assert (upload.status, upload.mode, upload.created_by) == ("queued", "add", marketer)

    page = marketer_client.get(detail).content.decode()
    assert 'id="upload-progress"' in page and 'data-status="queued"' in page
    assert 'hx-get="' + urls(upload)["progress"] in page
    assert 'hx-swap="outerHTML"' in page

    run_jobs()
    partial = marketer_client.get(urls(upload)["progress"]).content.decode()
    assert 'data-status="succeeded"' in partial
    assert "hx-get" not in partial
    assert '<dd class="added">2</dd>' in partial
    assert urls(upload)["bad_rows"] in partial
    assert set(CohortMember.objects.values_list("value", flat=True)) == {"a", "b"}


def test_an_unreachable_queue_shows_the_upload_waiting_on_its_page(
    cohort, marketer_client, settings
):
    settings.RQ_QUEUES = queues_at("redis://127.0.0.1:9/0", timeout=5)
    response = marketer_client.post(
        reverse("cohorts:upload_create", args=[cohort.pk]),
        {"mode": "add", "file": csv_file()},
        follow=True,
    )
    html = response.content.decode()
    assert 'data-status="queued"' in html
    assert "The job queue (Redis) is unreachable: the file is kept" in html


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("members.xlsx", b"PK\x03\x04", "Choose a .csv file."),
        ("members.csv", b"", "The submitted file is empty."),
        ("members.csv", b"external_id\n" + b"a\n" * 20, "The file is larger than 16"),
    ],
)
def test_a_wrong_file_gets_a_form_error_and_nothing_is_stored(
    cohort, marketer_client, media_root, settings, name, content, error
):
    settings.CSV_UPLOAD_MAX_BYTES = 16
    response = marketer_client.post(
        reverse("cohorts:upload_create", args=[cohort.pk]),
        {"mode": "replace", "file": csv_file(content, name)},
    )
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not CsvUpload.objects.exists()
    assert not (media_root / "uploads").exists()


def test_the_form_needs_a_mode(cohort, marketer_client):
    response = marketer_client.post(
        reverse("cohorts:upload_create", args=[cohort.pk]), {"file": csv_file()}
    )
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()


def test_the_upload_form_of_a_missing_cohort_is_a_404(marketer_client):
    assert marketer_client.get(reverse("cohorts:upload_create", args=[999999])).status_code == 404


def test_the_bad_rows_download_is_an_attachment(upload, marketer_client):
    response = marketer_client.get(urls(upload)["bad_rows"])
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="winter-bad-rows.csv"'
    content = b"".join(response.streaming_content)
    # Written again through the one CSV writer (core/csv_export.py): CRLF, formulas quoted.
    assert content == b"line,reason,raw\r\n3,external_id is empty,\r\n"


def test_an_upload_without_bad_rows_has_no_download(upload, marketer_client):
    CsvUpload.objects.filter(pk=upload.pk).update(bad_rows_path="", rows_bad=0)
    assert marketer_client.get(urls(upload)["bad_rows"]).status_code == 404


def test_a_running_upload_shows_rows_rate_and_time_left_and_keeps_polling(upload, viewer_client):
    CsvUpload.objects.filter(pk=upload.pk).update(
        status=CsvUpload.Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=10),
        bytes_done=250,
        rows_done=20000,
        rows_bad=3,
        finished_at=None,
    )
    html = viewer_client.get(urls(upload)["progress"]).content.decode()
    assert 'data-status="running"' in html
    assert '<progress max="100" value="25"' in html
    assert "hx-get" in html and 'hx-trigger="load delay:1s"' in html
    assert '<dd class="rows-done">20,000</dd>' in html
    assert '<dd class="rows-bad">3</dd>' in html
    assert "rows/s" in html
    assert "30 s" in html  # a quarter read in 10 s: 30 s left


def test_a_failed_upload_shows_its_error(upload, viewer_client):
    CsvUpload.objects.filter(pk=upload.pk).update(
        status=CsvUpload.Status.FAILED, error="The file is empty: it needs a header row."
    )
    html = viewer_client.get(urls(upload)["detail"]).content.decode()
    assert 'data-status="failed"' in html
    assert "The file is empty: it needs a header row." in html
    assert "Nothing from this file was applied" in html


def test_a_running_upload_whose_rows_are_all_read_says_it_is_applying(upload, viewer_client):
    CsvUpload.objects.filter(pk=upload.pk).update(
        status=CsvUpload.Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=5),
        bytes_done=1000,
        finished_at=None,
    )
    html = viewer_client.get(urls(upload)["progress"]).content.decode()
    assert "applying the changes to the cohort, all at once" in html
    assert "<dt>Time left</dt><dd>\u2013</dd>" in html  # an en dash: nothing left to read


def test_a_queued_upload_waits_for_a_worker(upload, viewer_client):
    CsvUpload.objects.filter(pk=upload.pk).update(status=CsvUpload.Status.QUEUED, finished_at=None)
    html = viewer_client.get(urls(upload)["progress"]).content.decode()
    assert 'data-status="queued"' in html and "Waiting for a worker" in html
    assert '<progress max="100" value="0"' in html


def test_a_partner_fed_cohort_refuses_csv_uploads(marketer_client):
    cohort = Cohort.objects.create(
        name="AF audience",
        source=Cohort.Source.PARTNER,
        partner="appsflyer",
        partner_cohort_id="c1",
    )
    url = reverse("cohorts:upload_create", args=[cohort.pk])
    response = marketer_client.post(url, {"mode": "add", "file": csv_file()}, follow=True)
    assert "change only with that partner" in response.content.decode()
    assert not CsvUpload.objects.filter(cohort=cohort).exists()
