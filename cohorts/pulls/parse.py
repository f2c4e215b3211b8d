"""Reading a downloaded Amplitude cohort file as a stream (docs/partners/amplitude.md §4).

CSV with a header row; columns are read by name, since their order is undocumented. Each row's
`user_id` becomes an external_id member; a row without one (an anonymous user) is skipped and
counted. Every other column but `amplitude_id` is a user property: the member's properties
become the row's non-empty ones, typed by cohorts.properties. Rows are yielded in chunks as
they are read, so a cohort of millions is never held whole in memory.
"""

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cohorts.membership import STATEMENT_BATCH, Identity
from cohorts.models import MAX_IDENTIFIER_LENGTH, IdType
from cohorts.properties import properties_of

USER_ID = "user_id"
# Columns of Amplitude's file that are not user properties.
NOT_PROPERTIES = frozenset({USER_ID, "amplitude_id"})


class BadFile(Exception):
    """The file cannot be read as Amplitude's cohort CSV; nothing of it is applied."""


@dataclass
class FileCounts:
    rows: int = 0
    skipped: int = 0  # rows without a usable user_id


def read_members(
    lines: Iterable[str], counts: FileCounts, *, chunk: int = STATEMENT_BATCH
) -> Iterator[list[Identity]]:
    """The file's members in chunks; `counts` fills in as the rows go by. `lines` is consumed
    lazily (open the file with newline="" so quoted line breaks survive)."""
    # strict: a stray or unterminated quote is an error, not a silently merged field.
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise BadFile("The file is empty: Amplitude's file starts with a header row.")
        names = [name.strip().lstrip("\ufeff").lower() for name in header]
        if USER_ID not in names:
            raise BadFile(
                f"The file has no {USER_ID} column (its columns: {', '.join(names)[:200]})."
            )
        column = names.index(USER_ID)
        # Property names as Amplitude wrote them (case kept), by column.
        properties = [
            (index, name.strip().lstrip("\ufeff"))
            for index, name in enumerate(header)
            if names[index] not in NOT_PROPERTIES and name.strip()
        ]
        pending: list[Identity] = []
        for record in reader:
            counts.rows += 1
            value = record[column].strip() if column < len(record) else ""
            if not value or len(value) > MAX_IDENTIFIER_LENGTH:
                counts.skipped += 1
                continue
            found = properties_of(
                (name, record[index]) for index, name in properties if index < len(record)
            )
            pending.append(Identity(IdType.EXTERNAL_ID.value, value, properties=found))
            if len(pending) >= chunk:
                yield pending
                pending = []
        if pending:
            yield pending
    except csv.Error as exc:
        raise BadFile(f"The file is not valid CSV at line {reader.line_num}: {exc}.") from None
    except UnicodeDecodeError:
        raise BadFile(f"The file is not UTF-8 text (near line {reader.line_num}).") from None
