"""What a trait run does differently from a membership run; the run loop, sending,
checkpoints, errors and events are the same (syncs/engine/run.py).

Its plan is the cohort's members whose chosen properties differ from what the trait ledger
(SyncedTraits) says was sent; it never removes anyone (a member who leaves the cohort keeps
the attributes sent). Comparing JSON values the way Braze holds them (types count) is not
portable SQL, so the plan is computed a keyset page of members at a time, each page compared
with its ledger rows in Python, and only the planned ids written: memory stays one page, and
the run pages through the plan as a membership run does. When a page is sent, each member's
update is computed again against the ledger of that moment, so a member whose values
changed back meanwhile is not sent (and counts as skipped, as one who left the diff). A
resumed run whose stored plan is lost rebuilds it as a membership run does (restore_plan,
every member in its bounds): the members with nothing to send are then skipped the same way.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import JSONField, Max, OuterRef, QuerySet, Subquery
from django.utils import timezone

from cohorts.models import CohortMember
from syncs.engine import diff
from syncs.engine.diff import Page, PlannedMember
from syncs.engine.events import Kind, record_event
from syncs.engine.plan import Scope
from syncs.engine.traits import Trait, TraitUpdate, traits_of, update_for
from syncs.models import Sync, SyncedTraits, SyncRun, SyncRunPlanItem

# Members compared per query while planning.
PLAN_PAGE = 2000


@dataclass(frozen=True)
class TraitRow:
    """A trait ledger row as a checkpoint writes it: the member, where it was sent, and the
    attribute values its profile holds from this sync now."""

    id_type: str
    alias_label: str
    value: str
    dest_type: str
    dest_value: str
    values: dict[str, Any]


@dataclass
class TraitWork:
    """A trait sync's run: its traits, and the updates of the page being sent (member id ->
    update), taken as its batches go out."""

    sync: Sync
    traits: list[Trait]
    send_nulls: bool
    everything: bool
    pending: dict[int, TraitUpdate] = field(default_factory=dict)

    @classmethod
    def of(cls, run: SyncRun, sync: Sync) -> "TraitWork":
        return cls(
            sync=sync,
            traits=traits_of(sync.traits),
            send_nulls=sync.traits_send_nulls,
            everything=run.trigger == SyncRun.Trigger.RESYNC,
        )

    def _update(self, properties: Any, sent: dict[str, Any]) -> TraitUpdate | None:
        return update_for(
            properties,
            sent,
            self.traits,
            send_nulls=self.send_nulls,
            everything=self.everything,
        )

    def plan(self, run: SyncRun, scope: Scope, *, batch_size: int) -> None:
        """Write the run's plan (the members with something to send) and its counts in one
        commit, as plan_run does for membership."""
        with transaction.atomic():
            SyncRunPlanItem.objects.filter(run_id=run.pk).delete()  # a re-plan starts over
            planned = 0
            if not scope.cleanup:
                members = scope.restrict(
                    CohortMember.objects.filter(cohort_id=self.sync.cohort_id), "add"
                )
                after = 0
                while page := list(
                    with_ledger(members, self.sync.pk)
                    .filter(id__gt=after)
                    .order_by("id")
                    .values_list("id", "properties", "sent")[:PLAN_PAGE]
                ):
                    after = page[-1][0]
                    ids = [
                        ref
                        for ref, properties, sent in page
                        if self._update(properties, sent or {}) is not None
                    ]
                    _write_plan(run.pk, ids)
                    planned += len(ids)
            top = SyncRunPlanItem.objects.filter(run_id=run.pk).aggregate(top=Max("ref_id"))
            plan = {
                "planned_adds": planned,
                "planned_removes": 0,
                "add_until": top["top"] or 0,
                "remove_until": 0,
            }
            SyncRun.objects.filter(pk=run.pk).update(**plan)
        for name, value in plan.items():
            setattr(run, name, value)
        record_event(
            run.pk,
            Kind.PLANNED,
            f"{planned:,} members to update, in batches of up to {batch_size:,}.",
            adds=planned,
            removes=0,
        )

    def page(
        self, *, mapping: list[str], run_id: int, after_id: int, limit: int
    ) -> Page[PlannedMember] | None:
        """The next page of the plan, as diff.page_to_add, each member's update computed now
        and kept in `pending` until its batch goes out."""
        page = diff.page_to_add(
            self.sync, mapping=mapping, run_id=run_id, after_id=after_id, limit=limit
        )
        if page is None:
            return None
        found = with_ledger(
            CohortMember.objects.filter(id__in=[m.pk for m in page.rows]), self.sync.pk
        ).values_list("id", "properties", "sent")
        for ref, properties, sent in found:
            update = self._update(properties, sent or {})
            if update is not None:
                self.pending[ref] = update
        return page


PLAN_TABLE = SyncRunPlanItem._meta.db_table


def _write_plan(run_id: int, ids: list[int]) -> None:
    """Store planned member ids as the run's adds: one statement a page (PostgreSQL takes the
    ids as one array), rather than a model instance each."""
    if not ids:
        return
    insert = f"INSERT INTO {PLAN_TABLE} (run_id, op, ref_id) "
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                insert + "SELECT %s, %s, unnest(%s::bigint[])",
                [run_id, SyncRunPlanItem.Op.ADD, ids],
            )
        else:
            cursor.executemany(
                insert + "VALUES (%s, %s, %s)",
                [(run_id, SyncRunPlanItem.Op.ADD, ref) for ref in ids],
            )


def with_ledger(members: QuerySet[CohortMember], sync_id: int) -> QuerySet[Any]:
    """`members` with `sent`: what the trait ledger says the sync wrote to each (None:
    nothing yet), read in the same query, one probe of the ledger's unique index a member."""
    return members.annotate(
        sent=Subquery(
            SyncedTraits.objects.filter(
                sync_id=sync_id,
                value=OuterRef("value"),
                id_type=OuterRef("id_type"),
                alias_label=OuterRef("alias_label"),
            ).values("values")[:1],
            output_field=JSONField(),
        )
    )


def record_traits(sync_id: int, run_id: int, rows: Iterable[TraitRow]) -> None:
    """Write what the partner accepted into the trait ledger, replacing each member's values
    (the checkpoint's transaction; one run of a sync at a time, so nothing else writes them)."""
    now = timezone.now()
    SyncedTraits.objects.bulk_create(
        [
            SyncedTraits(
                sync_id=sync_id,
                run_id=run_id,
                updated_at=now,
                id_type=row.id_type,
                alias_label=row.alias_label,
                value=row.value,
                dest_type=row.dest_type,
                dest_value=row.dest_value,
                values=row.values,
            )
            for row in rows
        ],
        update_conflicts=True,
        unique_fields=["sync", "value", "id_type", "alias_label"],
        update_fields=["dest_type", "dest_value", "values", "run", "updated_at"],
    )
