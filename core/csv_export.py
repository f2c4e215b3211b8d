"""The one way cohortsync writes a CSV that people download: every cell safe to open in a
spreadsheet.

A spreadsheet runs a cell that starts with = + - @ (or a tab or carriage return) as a formula
(CSV injection: `=cmd|' /C calc'!A0`, `=HYPERLINK(...)`). `safe_cell` puts a ' in front of such a
cell, so Excel, LibreOffice and Google Sheets show it as text. Every CSV endpoint writes through
`SafeWriter` (or `csv_lines`) and answers with `csv_download`; tests/core/test_csv_exports.py
walks the URL patterns and checks each one.
"""

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CONTENT_TYPE = "text/csv; charset=utf-8"


def safe_cell(value: object) -> str:
    """The cell as text, quoted so that a spreadsheet shows it instead of running it.

    Leading spaces do not hide a formula: some spreadsheets trim them on import."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.lstrip(" ").startswith(FORMULA_STARTS) else text


class _Echo:
    """A file whose write() hands the line back, so csv.writer can feed a streaming response."""

    def write(self, value: str) -> str:
        return value


class SafeWriter:
    """csv.writer whose every cell goes through safe_cell. With no file, writerow returns the
    line it wrote (for streaming)."""

    def __init__(self, file: Any = None) -> None:
        self._writer = csv.writer(file if file is not None else _Echo())

    def writerow(self, cells: Iterable[object]) -> Any:
        return self._writer.writerow([safe_cell(cell) for cell in cells])


def csv_lines(header: Iterable[object], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """CSV lines, header first, one row at a time: nothing is held in memory."""
    writer = SafeWriter()
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow(row)


def csv_download(lines: Iterable[str], filename: str) -> StreamingHttpResponse:
    """A streamed CSV attachment; `lines` must come from SafeWriter or csv_lines."""
    response = StreamingHttpResponse(lines, content_type=CONTENT_TYPE)
    disposition = content_disposition_header(True, filename)
    if disposition:
        response["Content-Disposition"] = disposition
    return response
