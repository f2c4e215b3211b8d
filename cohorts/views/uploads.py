"""CSV uploads of a cohort: the upload form, the upload's page, its live progress (htmx) and the
download of its bad rows. Marketers and admins upload; every role reads."""

import csv
import io
from collections.abc import Iterator
from typing import IO

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat

from cohorts.csv_rows import EXTRA_MAX_LENGTHS
from cohorts.models import Cohort, CsvUpload
from cohorts.uploads import describe_progress, start_csv_upload
from core.audit import client_ip
from core.csv_export import SafeWriter, csv_download
from core.roles import check_access, role_required

VIEW = "cohorts.view_cohort"
MANAGE = "cohorts.manage_cohorts"

MODE_HELP = {
    CsvUpload.Mode.ADD: "The file's members join the cohort; everyone already in it stays. "
    "Extra identifiers in the file update members the cohort already has.",
    CsvUpload.Mode.REMOVE: "The file's members leave the cohort; everyone else stays. "
    "Identifiers the cohort does not have are ignored.",
    CsvUpload.Mode.REPLACE: "The cohort becomes exactly the file's members: anyone not in the "
    "file is removed. It happens all at once, or not at all if the import fails.",
}


class CsvUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file", widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"})
    )
    mode = forms.ChoiceField(
        choices=CsvUpload.Mode.choices, widget=forms.RadioSelect, initial=CsvUpload.Mode.ADD
    )

    def clean_file(self) -> UploadedFile:
        uploaded: UploadedFile = self.cleaned_data["file"]
        if not (uploaded.name or "").lower().endswith(".csv"):
            raise forms.ValidationError("Choose a .csv file.")
        if (uploaded.size or 0) > settings.CSV_UPLOAD_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {filesizeformat(settings.CSV_UPLOAD_MAX_BYTES)}, "
                "the most one upload may be."
            )
        return uploaded


def _upload_of(cohort_pk: int, upload_pk: int) -> CsvUpload:
    """The upload, which must belong to the cohort in the URL."""
    return get_object_or_404(
        CsvUpload.objects.select_related("cohort", "created_by"), pk=upload_pk, cohort_id=cohort_pk
    )


@role_required(MANAGE)
def upload_create(request: HttpRequest, pk: int) -> HttpResponse:
    cohort = get_object_or_404(Cohort, pk=pk)
    try:
        cohort.refuse_manual_changes()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("cohorts:cohort_detail", pk=cohort.pk)
    if request.method == "POST":
        form = CsvUploadForm(request.POST, request.FILES)
    else:
        form = CsvUploadForm()
    if form.is_valid():
        upload = start_csv_upload(
            cohort=cohort,
            mode=form.cleaned_data["mode"],
            uploaded_file=form.cleaned_data["file"],
            actor=request.user,  # type: ignore[arg-type]
            ip=client_ip(request),
        )
        if upload.status == CsvUpload.Status.FAILED:
            messages.error(request, upload.error)
        else:
            # Where the import is, the page's live progress says; not a message that outlives it.
            messages.success(request, f"{upload.file_name} uploaded.")
        return redirect("cohorts:upload_detail", pk=cohort.pk, upload_pk=upload.pk)
    return render(
        request,
        "cohorts/uploads/form.html",
        {
            "cohort": cohort,
            "form": form,
            "modes": [(mode.value, mode.label, MODE_HELP[mode]) for mode in CsvUpload.Mode],
            "selected_mode": form["mode"].value(),
            "extra_columns": EXTRA_MAX_LENGTHS.items(),
            "max_bytes": settings.CSV_UPLOAD_MAX_BYTES,
        },
    )


@role_required(VIEW)
def upload_detail(request: HttpRequest, pk: int, upload_pk: int) -> HttpResponse:
    upload = _upload_of(pk, upload_pk)
    return render(
        request,
        "cohorts/uploads/detail.html",
        {"cohort": upload.cohort, "upload": upload, "progress": describe_progress(upload)},
    )


@role_required(VIEW)
def upload_progress(request: HttpRequest, pk: int, upload_pk: int) -> HttpResponse:
    upload = _upload_of(pk, upload_pk)
    return render(
        request,
        "cohorts/uploads/_progress.html",
        {"upload": upload, "progress": describe_progress(upload)},
    )


class _SafeRows:
    """The stored bad-rows file read back a row at a time and written again through the safe
    writer, so a file stored before cells were neutralised comes out neutralised too. The
    response closes the file (StreamingHttpResponse calls close())."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._text = io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline="")

    def __iter__(self) -> Iterator[str]:
        writer = SafeWriter()
        for row in csv.reader(self._text):
            yield writer.writerow(row)

    def close(self) -> None:
        self._text.close()


def upload_bad_rows(request: HttpRequest, pk: int, upload_pk: int) -> StreamingHttpResponse:
    # Not @role_required: its type admits HttpResponse, and this response streams.
    check_access(request, VIEW)
    upload = _upload_of(pk, upload_pk)
    if not upload.bad_rows_path:
        raise Http404("This upload has no bad rows.")
    try:
        handle = default_storage.open(upload.bad_rows_path, "rb")
    except FileNotFoundError:
        raise Http404("The bad-rows file is gone.") from None
    stem = upload.file_name.removesuffix(".csv").removesuffix(".CSV") or "upload"
    return csv_download(_SafeRows(handle), f"{stem}-bad-rows.csv")
