"""What the trait sync form shows: the properties a cohort's members carry (how many have each,
a few sample values), and what the next run of a trait sync would send: the members it would
update, the attributes written (Braze's data points), its requests and its time.

The properties a cohort has are read from its first PROPERTY_SAMPLE members (JSON keys have
no portable SQL), and the page says so; each one's count is then exact, one aggregate query
for all. The next run's figures are the engine's own comparison (syncs.engine.trait_run),
a page of members at a time: exact, in bounded memory.
"""

import math
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, JSONField, Q, QuerySet, Value
from django.db.models.fields.json import KeyTextTransform

from cohorts.models import CohortMember, IdType
from connections.models import Connection
from syncs.engine.trait_run import PLAN_PAGE, with_ledger
from syncs.engine.traits import Trait, attribute_value, update_for
from syncs.models import Sync
from syncs.pages.preview import Pace, connection_pace
from syncs.pages.progress import format_duration

# Members whose property names are read to list what the cohort carries.
PROPERTY_SAMPLE = 5000
SAMPLE_VALUES = 3


@dataclass(frozen=True)
class PropertySummary:
    """A property the cohort's members carry: how many have it (a value, not null), and a few
    distinct values as a trait sync would send them."""

    name: str
    members: int
    samples: list[str]


def property_catalog(cohort_id: int, also: list[str] | None = None) -> list[PropertySummary]:
    """The properties of the cohort's first PROPERTY_SAMPLE members, plus `also` (the ones a
    sync chose already), by name, each with its exact member count."""
    rows = list(
        CohortMember.objects.filter(cohort_id=cohort_id, properties__isnull=False)
        .order_by("id")
        .values_list("properties", flat=True)[:PROPERTY_SAMPLE]
    )
    samples: dict[str, list[str]] = {name: [] for name in also or []}
    for properties in rows:
        for name, value in (properties or {}).items():
            seen = samples.setdefault(name, [])
            text = _sample_text(value)
            if value is not None and len(seen) < SAMPLE_VALUES and text not in seen:
                seen.append(text)
    counts = member_counts(cohort_id, list(samples))
    return [PropertySummary(name, counts.get(name, 0), samples[name]) for name in sorted(samples)]


def member_counts(cohort_id: int, names: list[str]) -> dict[str, int]:
    """Members of the cohort with a value for each property (one aggregate query)."""
    if not names:
        return {}
    members = CohortMember.objects.filter(cohort_id=cohort_id).alias(
        **{f"p{n}": KeyTextTransform(name, "properties") for n, name in enumerate(names)}
    )
    row = members.aggregate(
        **{f"c{n}": Count("id", filter=Q(**{f"p{n}__isnull": False})) for n in range(len(names))}
    )
    return {name: row[f"c{n}"] for n, name in enumerate(names)}


def _sample_text(value: Any) -> str:
    text = str(attribute_value(value))
    if isinstance(value, bool):
        text = "true" if value else "false"
    return text if len(text) <= 40 else f"{text[:39]}…"


@dataclass(frozen=True)
class TraitRunPreview:
    """The next trait run: members updated, attributes written, members skipped for want of
    an external ID, requests and time at the connection's pace."""

    updates: int
    attributes: int
    skipped: int
    requests: int
    pace: Pace
    bills_data_points: bool

    @property
    def duration(self) -> str:
        seconds = self.pace.seconds(self.requests)
        return "under 0.1 s" if seconds < 0.05 else format_duration(seconds)


def preview_trait_run(
    *,
    cohort_id: int,
    connection: Connection,
    traits: list[Trait],
    send_nulls: bool,
    sync: Sync | None = None,
    everything: bool = False,
) -> TraitRunPreview:
    """What the next run would send: for a new sync (`sync` None) every chosen value, for a
    sync the changes against its trait ledger (all it has, for `everything`: a full resync),
    as the engine's plan counts them."""
    updates = attributes = skipped = 0
    after = 0
    members: QuerySet[Any] = CohortMember.objects.filter(cohort_id=cohort_id)
    if sync is None:
        # Nothing sent yet: a member without properties has nothing to send (with a ledger,
        # one whose properties are gone may have nulls to send).
        members = members.filter(properties__isnull=False)
    if sync is not None:
        members = with_ledger(members, sync.pk)
    else:
        members = members.annotate(sent=Value(None, output_field=JSONField()))
    while page := list(
        members.filter(id__gt=after)
        .order_by("id")
        .values_list("id", "id_type", "properties", "sent")[:PLAN_PAGE]
    ):
        after = page[-1][0]
        for _, id_type, properties, sent in page:
            update = update_for(
                properties,
                sent or {},
                traits,
                send_nulls=send_nulls,
                everything=everything,
            )
            if update is None:
                continue
            if id_type != IdType.EXTERNAL_ID:
                skipped += 1
                continue
            updates += 1
            attributes += len(update.attributes)
    pace = connection_pace(connection)
    config = connection.get_config()
    return TraitRunPreview(
        updates=updates,
        attributes=attributes,
        skipped=skipped,
        requests=math.ceil(updates / pace.batch_size) if updates else 0,
        pace=pace,
        bills_data_points=connection.partner.data_points_per_object(config, {}) is not None,
    )
