"""A run's plan: its diff written once, set-based, when it starts (SyncRunPlanItem), with the
planned counts in the same commit; and the mass-removal guard that holds a run before it sends.

The engine pages through the plan afterwards (syncs.engine.diff.page_to_add / page_to_remove).
"""

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Case, Count, Exists, Max, OuterRef, QuerySet, Value, When
from django.db.models.functions import Concat

from cohorts.models import CohortMember, IdType
from syncs.engine import diff
from syncs.engine.errors import SKIPPED_REASON
from syncs.engine.events import Kind, record_event
from syncs.engine.sending import StopRun
from syncs.models import Sync, SyncedMember, SyncRun, SyncRunError, SyncRunPlanItem

Op = SyncRunPlanItem.Op
# The person already said yes (an approved held run starts with trigger resume), or asked for
# everything to be re-sent or removed; a retry removes only what its run was planned (and
# guarded) to remove.
UNGUARDED = (
    SyncRun.Trigger.RESYNC,
    SyncRun.Trigger.RESUME,
    SyncRun.Trigger.CLEANUP,
    SyncRun.Trigger.RETRY,
)


@dataclass(frozen=True)
class Scope:
    """What a run covers, from its trigger and its sync's leaving policy."""

    # A full resync re-sends every cohort member, whatever the ledger says; removals still
    # come from the ledger, so members who left are removed all the same.
    everyone: bool
    # A cleanup run (before its connection is deleted) removes everything in the ledger.
    cleanup: bool
    removes: bool
    # A retry run covers only the members that failed in the run it retries (retry_of).
    retry: bool = False
    retry_of: int | None = None

    @classmethod
    def of(cls, run: SyncRun, sync: Sync) -> "Scope":
        cleanup = run.trigger == SyncRun.Trigger.CLEANUP
        return cls(
            everyone=run.trigger == SyncRun.Trigger.RESYNC,
            cleanup=cleanup,
            # A trait sync removes no one: a member who leaves keeps the attributes sent.
            removes=cleanup or (sync.leaving_members == Sync.Leaving.REMOVE and not sync.is_traits),
            retry=run.trigger == SyncRun.Trigger.RETRY,
            retry_of=run.retry_of_id,
        )

    def restrict(self, rows: QuerySet[Any], operation: str) -> QuerySet[Any]:
        """The diff's `rows` (cohort members or ledger rows) this run covers: for a retry, only
        those whose `operation` ("add" or "remove") failed in the run it retries, matched by
        the identity text the run's errors name them by. Members it skipped are not retried:
        they have no identifier the sync can use, and would be skipped again."""
        if not self.retry:
            return rows
        failed = SyncRunError.objects.filter(
            # A retry whose run is gone (SET_NULL) plans nothing rather than the whole diff.
            run_id=self.retry_of,
            operation=operation,
            member=OuterRef("identity"),
        ).exclude(reason__startswith=SKIPPED_REASON)
        return rows.alias(identity=_identity_text()).filter(Exists(failed))


def _identity_text() -> Case:
    """diff.identity_text in SQL: `alias_label:value` for a user alias, else `id_type:value`."""
    return Case(
        When(id_type=IdType.USER_ALIAS, then=Concat("alias_label", Value(":"), "value")),
        default=Concat("id_type", Value(":"), "value"),
    )


def plan_run(run: SyncRun, scope: Scope, *, batch_size: int) -> None:
    """Write the run's diff into its plan, set-based, with the counts in the same commit (a
    worker that dies while planning leaves no half plan behind); then hold the run if it
    would remove too much. The run's plan fields are updated in place."""
    sync = run.sync
    with transaction.atomic():
        SyncRunPlanItem.objects.filter(run_id=run.pk).delete()  # a re-plan starts over
        adds = removes = 0
        whole_cohort = _adds_whole_cohort(sync, scope)
        if whole_cohort:
            # Nothing to subtract: the plan is the cohort as it is now, up to its last member.
            # Writing a row per member was a quarter of a first 300,000-member sync's time.
            cohort = CohortMember.objects.filter(cohort_id=sync.cohort_id)
            counted = cohort.aggregate(members=Count("id"), top=Max("id"))
            adds, add_until = counted["members"], counted["top"] or 0
        elif not scope.cleanup:
            to_add = scope.restrict(diff.members_to_add(sync, everyone=scope.everyone), "add")
            adds = diff.write_plan(run.pk, Op.ADD, to_add)
        if scope.removes:
            to_remove = scope.restrict(
                diff.ledger_to_remove(sync, everything=scope.cleanup), "remove"
            )
            removes = diff.write_plan(run.pk, Op.REMOVE, to_remove)
        planned = SyncRunPlanItem.objects.filter(run_id=run.pk)
        if not whole_cohort:
            add_until = _top_ref(planned.filter(op=Op.ADD)) if adds else 0
        plan = {
            "planned_adds": adds,
            "planned_removes": removes,
            # The plan's bounds, kept for a run whose stored plan is lost (restore_plan).
            "add_until": add_until,
            "remove_until": _top_ref(planned.filter(op=Op.REMOVE)) if removes else 0,
            "adds_whole_cohort": whole_cohort,
        }
        SyncRun.objects.filter(pk=run.pk).update(**plan)
    for field, value in plan.items():
        setattr(run, field, value)
    record_event(
        run.pk,
        Kind.PLANNED,
        f"{adds:,} to add and {removes:,} to remove, in batches of up to {batch_size:,}.",
        adds=adds,
        removes=removes,
    )
    _guard_mass_removal(run, removes)


def _adds_whole_cohort(sync: Sync, scope: Scope) -> bool:
    """Whether the run adds every member of the cohort: a full resync, or a first sync (an
    empty ledger), unless it is a retry (only the failed) or a cleanup (no adds)."""
    if scope.cleanup or scope.retry:
        return False
    return scope.everyone or not SyncedMember.objects.filter(sync_id=sync.pk).exists()


def restore_plan(run: SyncRun, scope: Scope) -> None:
    """A resumed run whose stored plan is gone (planned before plans were stored, or the plan
    was deleted): rebuild what is left of it from its bounds, after its cursors. The planned
    counts stay as they were, so the counts still add up."""
    sync = run.sync
    with transaction.atomic():
        # A whole-cohort plan stored no adds: its pages read the cohort, within its bounds.
        if not scope.cleanup and not run.adds_whole_cohort and run.add_until > run.add_cursor:
            to_add = scope.restrict(
                diff.members_to_add(sync, everyone=scope.everyone), "add"
            ).filter(id__gt=run.add_cursor, id__lte=run.add_until)
            diff.write_plan(run.pk, Op.ADD, to_add)
        if scope.removes and run.remove_until > run.remove_cursor:
            to_remove = scope.restrict(
                diff.ledger_to_remove(sync, everything=scope.cleanup), "remove"
            ).filter(id__gt=run.remove_cursor, id__lte=run.remove_until)
            diff.write_plan(run.pk, Op.REMOVE, to_remove)


def _guard_mass_removal(run: SyncRun, removes: int) -> None:
    if run.trigger in UNGUARDED:
        return
    in_destination = SyncedMember.objects.filter(sync_id=run.sync_id).count()
    threshold = run.sync.mass_removal_threshold_pct
    if in_destination and removes * 100 > threshold * in_destination:
        raise StopRun(
            f"This run would remove {removes:,} of the {in_destination:,} members in the "
            f"destination (more than {threshold} %): approve or reject it.",
            status=SyncRun.Status.HELD,
        )


def _top_ref(items: Any) -> int:
    return items.aggregate(top=Max("ref_id"))["top"] or 0
