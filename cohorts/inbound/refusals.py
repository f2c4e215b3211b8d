"""Inbound requests refused before they showed a genuine data-import key: counted, not logged.

Anyone on the internet can post a made-up key, so such a request must not cost a row of its own
(800 of them in 6 s were 800 ImportRequest rows). Each adds one to a RefusedImportCount per
partner, reason and minute instead: one upsert, at most one row per partner, reason and minute
however many arrive. A request with a genuine key, even a refused one (revoked, expired, another
partner's, rate-limited, a bad payload), keeps its ImportRequest row, which the key's page shows.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from cohorts.inbound import schema
from cohorts.inbound.service import INVALID_SECRET
from cohorts.models import RefusedImportCount

Reason = RefusedImportCount.Reason

# The message a request was refused with, to the reason it is counted under.
REASONS: dict[str, str] = {
    schema.BAD_CLIENT_SECRET: Reason.NO_KEY,
    INVALID_SECRET: Reason.UNKNOWN_KEY,
    schema.NOT_AN_OBJECT: Reason.NOT_JSON,
    schema.BODY_TOO_LARGE: Reason.TOO_LARGE,
}


def reason_for(message: str) -> str:
    return REASONS.get(message, Reason.OTHER)


def count_refusal(*, partner: str, reason: str, now: datetime | None = None) -> None:
    """Add one to the (partner, reason, minute) counter, creating it if needed; one statement,
    so concurrent requests never lose a count (INSERT ... ON CONFLICT: SQLite and PostgreSQL)."""
    minute = (now or timezone.now()).replace(second=0, microsecond=0)
    table = connection.ops.quote_name(RefusedImportCount._meta.db_table)
    # Only the table name is interpolated; values travel as parameters.
    sql = (
        f"INSERT INTO {table} (partner, reason, minute, count) VALUES (%s, %s, %s, 1) "  # noqa: S608
        f"ON CONFLICT (partner, reason, minute) DO UPDATE SET count = {table}.count + 1"
    )
    minute_value = connection.ops.adapt_datetimefield_value(minute)
    with connection.cursor() as cursor:
        cursor.execute(sql, [partner, reason, minute_value])


@dataclass(frozen=True)
class RefusedRow:
    partner: str
    reason: str
    label: str
    count: int


@dataclass(frozen=True)
class RefusedSummary:
    since: datetime
    total: int
    rows: list[RefusedRow]  # by partner and reason, most first


def refused_since(hours: int = 24, now: datetime | None = None) -> RefusedSummary:
    """Refused requests without a genuine key in the last `hours`, by partner and reason."""
    since = (now or timezone.now()) - timedelta(hours=hours)
    labels = dict(Reason.choices)
    grouped = (
        RefusedImportCount.objects.filter(minute__gte=since.replace(second=0, microsecond=0))
        .values("partner", "reason")
        .annotate(total=Sum("count"))
        .order_by("-total", "partner", "reason")
    )
    rows = [
        RefusedRow(
            partner=row["partner"],
            reason=row["reason"],
            label=labels.get(row["reason"], row["reason"]),
            count=int(row["total"]),
        )
        for row in grouped
    ]
    return RefusedSummary(since=since, total=sum(row.count for row in rows), rows=rows)
