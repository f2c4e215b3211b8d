"""Reading an uploaded cohort CSV: its header, whose problems are fatal, and its rows, whose
problems make bad rows that are reported and skipped.

Accepted columns: one primary identifier (`external_id`, `device_id`, or `alias_name` with
`alias_label`) and any of the extra identifiers in `EXTRA_IDENTIFIERS`. Names are matched without
regard to case or surrounding spaces; values are stripped, and a blank extra identifier is NULL.
Any other column is a member property, named as written (spaces around it trimmed): a file with
property columns gives each member the row's non-empty ones, typed by cohorts.properties, in
place of the properties it had; a file without any leaves members' properties as they are.
"""

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cohorts.models import EXTRA_IDENTIFIERS, MAX_IDENTIFIER_LENGTH, CohortMember, IdType
from cohorts.properties import properties_of

PRIMARY_COLUMNS: dict[str, str] = {
    "external_id": IdType.EXTERNAL_ID,
    "device_id": IdType.DEVICE_ID,
    "alias_name": IdType.USER_ALIAS,
}
LABEL_COLUMN = "alias_label"
ACCEPTED_COLUMNS = (*PRIMARY_COLUMNS, LABEL_COLUMN, *EXTRA_IDENTIFIERS)
EXTRA_MAX_LENGTHS: dict[str, int] = {
    name: CohortMember._meta.get_field(name).max_length or MAX_IDENTIFIER_LENGTH  # type: ignore[union-attr]
    for name in EXTRA_IDENTIFIERS
}
RAW_TEXT_LIMIT = 1000


class CsvFileError(Exception):
    """The file cannot be imported at all; nothing of it is applied."""


class BadRow(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Header:
    id_type: str
    value_column: str
    value_index: int
    label_index: int | None
    # (column name, index, max length) of each extra identifier present, in file order.
    extras: tuple[tuple[str, int, int], ...]
    width: int
    # (property name, index) of each property column, in file order.
    properties: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Record:
    """One CSV record: its first line number, and its fields or why they could not be read."""

    line: int
    fields: list[str]
    error: str = ""


@dataclass(frozen=True)
class Row:
    alias_label: str
    value: str
    extras: dict[str, str | None]
    # The row's properties; None when the file has no property column.
    properties: dict[str, Any] | None = None


class Lines:
    """The file decoded line by line, counting bytes read (for the progress bar); a line that is
    not UTF-8 is fatal, with its line number."""

    def __init__(self, binary: Iterable[bytes]) -> None:
        self.binary = binary
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        for number, raw in enumerate(self.binary, start=1):
            self.bytes_read += len(raw)
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                raise CsvFileError(
                    f"The file is not UTF-8 text (line {number}). "
                    "Save it as “CSV UTF-8” and upload it again."
                ) from None


def unreadable(error: csv.Error, first: int, last: int) -> str:
    """Why a record could not be read. A quote that is never closed makes the reader take every
    line after it as one field, to the end of the file or to the next stray quote: that record
    says where the quote opened and which lines it swallowed, rather than a parser message."""
    at_end = str(error) == "unexpected end of data"
    if not at_end and first == last:
        return f"not valid CSV ({error})"
    reason = f"unterminated quote starting at line {first}"
    if at_end and first == last:
        return reason
    if at_end:
        return f"{reason}: the rest of the file (lines {first} to {last}) was read as one row"
    return f"{reason}: lines {first} to {last} were read as one row ({error})"


def read_records(lines: Iterable[str]) -> Iterator[Record]:
    """Records with their first line number. Blank lines are skipped; a record that is not valid
    CSV comes with its error, and reading carries on at the next line."""
    reader = csv.reader(lines, strict=True)
    previous_end = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Record(previous_end + 1, [], unreadable(exc, previous_end + 1, reader.line_num))
        else:
            if fields:
                yield Record(previous_end + 1, fields)
        previous_end = reader.line_num


def parse_header(records: Iterator[Record]) -> Header:
    first = next(records, None)
    if first is None:
        raise CsvFileError("The file is empty: it needs a header row naming its columns.")
    if first.error or any("\x00" in name for name in first.fields):
        raise CsvFileError("The file is not CSV: its first row cannot be read as a header.")
    names = [name.strip().lower() for name in first.fields]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise CsvFileError(f"The column {name or '(blank)'} appears twice in the header.")
        seen.add(name)
    if "" in names:
        raise CsvFileError(
            "A column of the header has no name: name it (a member property) or remove it."
        )
    primary = [name for name in names if name in PRIMARY_COLUMNS]
    if not primary:
        raise CsvFileError(
            "The header has no identifier column: it needs external_id, device_id, "
            "or alias_name with alias_label."
        )
    if len(primary) > 1:
        raise CsvFileError(
            f"The header has {len(primary)} identifier columns ({', '.join(primary)}): "
            "use exactly one per file."
        )
    column = primary[0]
    if column == "alias_name" and LABEL_COLUMN not in names:
        raise CsvFileError("The column alias_name needs an alias_label column beside it.")
    if column != "alias_name" and LABEL_COLUMN in names:
        raise CsvFileError("The column alias_label is only used with alias_name.")
    return Header(
        id_type=PRIMARY_COLUMNS[column],
        value_column=column,
        value_index=names.index(column),
        label_index=names.index(LABEL_COLUMN) if LABEL_COLUMN in names else None,
        extras=tuple(
            (name, index, EXTRA_MAX_LENGTHS[name])
            for index, name in enumerate(names)
            if name in EXTRA_MAX_LENGTHS
        ),
        width=len(names),
        properties=tuple(
            (first.fields[index].strip(), index)
            for index, name in enumerate(names)
            if name not in ACCEPTED_COLUMNS
        ),
    )


def _required(fields: list[str], index: int, column: str) -> str:
    value = fields[index].strip()
    if not value:
        raise BadRow(f"{column} is empty")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise BadRow(f"{column} is longer than {MAX_IDENTIFIER_LENGTH} characters")
    return value


def parse_row(header: Header, record: Record) -> Row:
    """The row's identity and extra identifiers; raises BadRow with the reason."""
    if record.error:
        raise BadRow(record.error)
    fields = record.fields
    if len(fields) != header.width:
        raise BadRow(f"expected {header.width} fields, found {len(fields)}")
    if any("\x00" in field for field in fields):
        raise BadRow("contains a NUL character")
    value = _required(fields, header.value_index, header.value_column)
    label = ""
    if header.label_index is not None:
        label = _required(fields, header.label_index, LABEL_COLUMN)
    extras: dict[str, str | None] = dict.fromkeys(EXTRA_IDENTIFIERS)
    for name, index, max_length in header.extras:
        extra = fields[index].strip()
        if len(extra) > max_length:
            raise BadRow(f"{name} is longer than {max_length} characters")
        extras[name] = extra or None
    properties = None
    if header.properties:
        properties = properties_of(
            (name, fields[index].strip()) for name, index in header.properties
        )
    return Row(alias_label=label, value=value, extras=extras, properties=properties)


def raw_text(record: Record) -> str:
    """The record as CSV text again, cut short for the bad-rows file."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(record.fields)
    return out.getvalue()[:RAW_TEXT_LIMIT]
