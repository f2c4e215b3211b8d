"""What a sync would do before it is saved: identifier coverage and the next run's plan.

The sync form shows these so a marketer sees "62 % of members have a GAID" before choosing it,
and how many members a run would add, skip and remove, in how many requests and how long under
the connection's rate limit. Every figure comes from the database in aggregate queries (a fixed
number per page, whatever the cohort's size) and counts what the engine (syncs.engine.run) does:
the same diff, the same identifier fallback as diff.recipient_for, the same batches, the same
mass-removal guard.
"""

import math
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, Count, Exists, F, OuterRef, Q, QuerySet, Sum, Value, When
from django.db.models import IntegerField as IntegerOutput
from django.db.models.expressions import Window
from django.db.models.functions import RowNumber

from cohorts.models import EXTRA_IDENTIFIERS, CohortMember, IdType
from connections.models import Connection
from syncs.engine import diff
from syncs.engine.window import latest_answer_time
from syncs.models import Sync, SyncedMember
from syncs.pages.progress import format_duration

PRIMARY_TYPES = tuple(choice.value for choice in IdType)
# The pace for a partner whose config names no rate limit (AppsFlyer): see syncs.engine.sending.


def has_identifier(name: str) -> Q:
    """Members that carry identifier `name`, exactly as diff.recipient_for reads them."""
    if name in PRIMARY_TYPES:
        return Q(id_type=name)
    if name in EXTRA_IDENTIFIERS:
        return Q(**{f"{name}__isnull": False}) & ~Q(**{name: ""})
    raise ValueError(f"Unknown identifier {name!r}.")


def usable_under(mapping: list[str]) -> Q:
    """Members with at least one identifier of the mapping: the ones a run sends."""
    if not mapping:
        raise ValueError("A mapping names at least one identifier.")
    usable = has_identifier(mapping[0])
    for name in mapping[1:]:
        usable |= has_identifier(name)
    return usable


@dataclass(frozen=True)
class Coverage:
    """How many of the cohort's members carry each identifier, and how many the mapping reaches."""

    total: int
    by_identifier: dict[str, int]
    usable: int | None = None

    def percent(self, name: str) -> float:
        return 100 * self.by_identifier.get(name, 0) / self.total if self.total else 0.0

    @property
    def usable_percent(self) -> float:
        return 100 * (self.usable or 0) / self.total if self.total else 0.0


def identifier_coverage(cohort_id: int, mapping: list[str] | None = None) -> Coverage:
    """One aggregate query: members per primary type, per extra identifier, and usable ones."""
    names = (*PRIMARY_TYPES, *EXTRA_IDENTIFIERS)
    # Aliased apart from the columns: an alias named like a column would shadow it in filters.
    counts: dict[str, Any] = {
        f"has_{name}": Count("id", filter=has_identifier(name)) for name in names
    }
    counts["total"] = Count("id")
    if mapping:
        counts["usable"] = Count("id", filter=usable_under(mapping))
    row = CohortMember.objects.filter(cohort_id=cohort_id).aggregate(**counts)
    return Coverage(
        total=row["total"],
        by_identifier={name: row[f"has_{name}"] for name in names},
        usable=row.get("usable"),
    )


@dataclass(frozen=True)
class Pace:
    """A connection's batch size, rate limit and requests in flight, as the engine uses them,
    and how long the partner took to answer its latest run (None before any)."""

    batch_size: int
    rate_requests: int
    rate_seconds: float
    in_flight: int = 1
    latency_ms: int | None = None
    # Whether the run's last adds take its first removals along in one request (Braze).
    mixes: bool = False

    @property
    def text(self) -> str:
        rate = f"{self.rate_requests:,} requests per {self.rate_seconds:g} s"
        if self.latency_ms is None:
            return f"{rate}; the partner's answer time is not known yet"
        return (
            f"{rate}, {self.in_flight:,} in flight, the partner answering in "
            f"{self.latency_ms:,} ms (its latest run)"
        )

    def seconds(self, requests: int) -> float:
        """`requests` at this pace: the slower of the rate limit and the answers, when the
        connection keeps `in_flight` requests waiting for the partner's answer time."""
        if not requests:
            return 0.0
        by_rate = requests * self.rate_seconds / self.rate_requests
        if self.latency_ms is None:
            return by_rate
        rounds = math.ceil(requests / self.in_flight)
        return max(by_rate, rounds * self.latency_ms / 1000)


def connection_pace(connection: Connection) -> Pace:
    """Read from the typed config and the partner's answer time the engine starts a run from
    (window.latest_answer_time: the latest run that made requests of the connection's sync
    that finished last); raises ValueError when the config is not valid."""
    config = connection.get_config()
    rate = connection.partner.rate_limit(config)
    latest = latest_answer_time(connection.pk)
    return Pace(
        batch_size=connection.partner(config, "").max_batch_size(),
        rate_requests=rate.requests,
        rate_seconds=rate.seconds,
        in_flight=connection.partner.max_in_flight(config),
        latency_ms=None if latest is None else latest[1],
        mixes=connection.partner.mixes_adds_and_removes,
    )


@dataclass(frozen=True)
class DataPoints:
    """What members written cost at a partner that bills data points (Braze: one per custom
    attribute an object updates, adds and removals alike)."""

    members: int
    per_member: int

    @property
    def total(self) -> int:
        return self.members * self.per_member


@dataclass(frozen=True)
class SyncPreview:
    """The next run's plan: what it adds, skips and removes, and what that costs."""

    pace: Pace
    to_add: int
    adds: int
    add_requests: int
    removes: int = 0
    # Members who left the cohort but stay in the destination (leaving members kept).
    left_kept: int = 0
    in_destination: int = 0
    threshold_pct: int = 50
    notes: list[str] = field(default_factory=list)
    # The partner's per-member price in data points; None when it bills none.
    data_points_per_member: int | None = None

    @property
    def skipped(self) -> int:
        return self.to_add - self.adds

    @property
    def remove_requests(self) -> int:
        """The requests the removals need of their own: where the partner mixes them, the
        request of the run's last adds takes the first ones along, up to the batch size."""
        size = self.pace.batch_size
        room = size - self.to_add % size if self.pace.mixes and self.to_add % size else 0
        return math.ceil(max(0, self.removes - room) / size)

    @property
    def requests(self) -> int:
        return self.add_requests + self.remove_requests

    @property
    def seconds(self) -> float:
        """These requests at the connection's pace: its rate limit, or the partner's answer
        time over the requests in flight, whichever is slower (an idle connection's first
        burst may go faster)."""
        return self.pace.seconds(self.requests)

    @property
    def duration(self) -> str:
        return "under 0.1 s" if self.seconds < 0.05 else format_duration(self.seconds)

    @property
    def data_points(self) -> DataPoints | None:
        """The members this run writes (adds and removals), in the partner's data points."""
        if self.data_points_per_member is None:
            return None
        return DataPoints(self.adds + self.removes, self.data_points_per_member)

    @property
    def held(self) -> bool:
        """Whether the mass-removal guard would hold the run for approval (as RunSender._plan)."""
        return bool(
            self.in_destination and self.removes * 100 > self.threshold_pct * self.in_destination
        )


def _written_as(sync: Sync, options: dict[str, Any]) -> str:
    """How a sync writes membership (Braze: array, boolean, both); "" without modes."""
    partner = sync.connection.partner
    if not partner.membership_modes:
        return ""
    return partner.membership_mode(sync.connection.get_config(), options)


def _add_counts(members: QuerySet[CohortMember], mapping: list[str], batch: int) -> dict[str, int]:
    """Members to add, those with a usable identifier, and the requests sending them takes.

    The engine takes the members to add in id order, `batch` at a time, and sends a request for
    each batch holding at least one usable member; a window numbers the rows the same way, so
    the request count is exact even when skipped members sit between usable ones.
    """
    numbered = members.annotate(
        usable=Case(
            When(usable_under(mapping), then=Value(1)),
            default=Value(0),
            output_field=IntegerOutput(),
        ),
        page=(Window(RowNumber(), order_by=F("id").asc()) - 1) / Value(batch),
    )
    row = numbered.aggregate(
        to_add=Count("id"),
        adds=Sum("usable"),
        requests=Count("page", distinct=True, filter=Q(usable=1)),
    )
    return {name: row[name] or 0 for name in ("to_add", "adds", "requests")}


def preview_new_sync(
    *,
    cohort_id: int,
    connection: Connection,
    mapping: list[str],
    threshold_pct: int = 50,
    options: dict[str, Any] | None = None,
) -> SyncPreview:
    """A new sync's first run sends the whole cohort and removes nothing: two queries (the
    counts, and the connection's latest answer time)."""
    pace = connection_pace(connection)
    config = connection.get_config()
    counts = _add_counts(CohortMember.objects.filter(cohort_id=cohort_id), mapping, pace.batch_size)
    return SyncPreview(
        pace=pace,
        to_add=counts["to_add"],
        adds=counts["adds"],
        add_requests=counts["requests"],
        threshold_pct=threshold_pct,
        notes=_how_adds_apply(connection),
        data_points_per_member=connection.partner.data_points_per_object(config, options or {}),
    )


def _how_adds_apply(connection: Connection) -> list[str]:
    if connection.partner.applies_every_add(connection.get_config()):
        return []
    return [
        f"{connection.name} updates existing profiles only: {connection.get_kind_display()} "
        "skips members who have no profile yet and still says it accepted them, so runs count "
        "these adds as sent, not as in the destination. Removals never create a profile."
    ]


def preview_sync_change(
    *,
    sync: Sync,
    mapping: list[str],
    leaving_members: str,
    threshold_pct: int,
    options: dict[str, Any] | None = None,
) -> SyncPreview:
    """The next run of `sync` once changed: adds under the new mapping, removals under the new
    leaving policy, and the guard at the new threshold. Two queries."""
    pace = connection_pace(sync.connection)
    counts = _add_counts(diff.members_to_add(sync), mapping, pace.batch_size)
    in_cohort = Exists(
        CohortMember.objects.filter(
            cohort_id=sync.cohort_id,
            id_type=OuterRef("id_type"),
            alias_label=OuterRef("alias_label"),
            value=OuterRef("value"),
        )
    )
    ledger = SyncedMember.objects.filter(sync_id=sync.pk).aggregate(
        in_destination=Count("id"), left=Count("id", filter=~Q(in_cohort))
    )
    removing = leaving_members == Sync.Leaving.REMOVE
    notes = []
    if mapping != sync.identifier_mapping and ledger["in_destination"]:
        notes.append(
            f"The new identifiers apply to members sent from now on: the "
            f"{ledger['in_destination']:,} already in the destination keep theirs until a full "
            "resync."
        )
    if options is not None and _written_as(sync, options) != _written_as(sync, sync.options):
        notes.append(
            "Members already in the destination keep the membership attributes written the "
            "old way; a full resync writes them the new way (it does not clear the old ones)."
        )
    return SyncPreview(
        pace=pace,
        to_add=counts["to_add"],
        adds=counts["adds"],
        add_requests=counts["requests"],
        removes=ledger["left"] if removing else 0,
        left_kept=0 if removing else ledger["left"],
        in_destination=ledger["in_destination"],
        threshold_pct=threshold_pct,
        notes=notes,
        data_points_per_member=sync.connection.partner.data_points_per_object(
            sync.connection.get_config(), sync.options if options is None else options
        ),
    )


def resync_data_points(sync: Sync) -> DataPoints | None:
    """What a full resync of `sync` costs in its partner's data points: every member with a
    usable identifier written again, and the members who left removed. Two queries (none for a
    partner that bills none)."""
    per_member = sync.connection.partner.data_points_per_object(
        sync.connection.get_config(), sync.options
    )
    if per_member is None:
        return None
    mapping = sync.identifier_mapping or [
        sync.connection.partner.default_identifier(sync.connection.get_config())
    ]
    adds = identifier_coverage(sync.cohort_id, mapping).usable or 0
    removes = (
        diff.ledger_to_remove(sync).count() if sync.leaving_members == Sync.Leaving.REMOVE else 0
    )
    return DataPoints(adds + removes, per_member)
