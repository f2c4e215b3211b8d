"""A sync's lifecycle after creation: pause and resume it, cancel a run, approve or reject a run
the mass-removal guard held, resend everything, retry a run's failed members, delete it.

Every service is typed and keyword-only, claims its state change with a compare-and-set and
writes its audit entry in the same transaction, like those in syncs.services.
"""

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from connections.models import Connection
from core import audit
from syncs import cadence as cadences
from syncs.engine.events import Kind, record_event
from syncs.engine.outcome import finish_run
from syncs.models import Sync, SyncedMember, SyncRun
from syncs.services import start_run

Status = SyncRun.Status


def _who(actor: User | None) -> str:
    return actor.get_username() if actor is not None else "cohortsync"


# Pause and resume


def pause_sync(*, sync: Sync, actor: User | None, ip: str | None = None) -> Sync:
    """Take an active sync out of the schedule. A queued or running run goes on: cancel it."""
    with transaction.atomic():
        paused = Sync.objects.filter(pk=sync.pk, status=Sync.Status.ACTIVE).update(
            status=Sync.Status.PAUSED
        )
        if not paused:
            sync.refresh_from_db(fields=["status"])
            raise ValidationError(f"{sync.name} is {sync.get_status_display().lower()}.")
        audit.record(actor=actor, action="sync.paused", target=sync, ip=ip)
    sync.refresh_from_db()
    return sync


def resume_sync(*, sync: Sync, actor: User | None, ip: str | None = None) -> Sync:
    """Put a paused (or needs-attention) sync back on its schedule, from now on.

    A sync that needs attention stopped because its connection was refused; resuming it before
    the connection is healthy again would only fail the next run the same way.
    """
    sync.refresh_from_db()
    previous = sync.status
    if previous == Sync.Status.ACTIVE:
        raise ValidationError(f"{sync.name} is active already.")
    connection = sync.connection
    unhealthy = connection.state == Connection.State.NEEDS_ATTENTION or (
        previous == Sync.Status.NEEDS_ATTENTION and connection.state != Connection.State.HEALTHY
    )
    if unhealthy:
        raise ValidationError(
            f"The connection {connection.name} is not healthy "
            f"({connection.get_state_display().lower()}): test it again once it is fixed, "
            "then resume this sync."
        )
    try:
        cadence = cadences.parse_cadence(sync.cadence)
    except cadences.CadenceError as exc:
        raise ValidationError(f"The schedule of {sync.name} is invalid: {exc}") from None
    # Missed slots are not caught up: the schedule starts again from now.
    following = cadences.next_run_at(cadence, after=timezone.now(), spread_key=sync.pk)
    with transaction.atomic():
        resumed = Sync.objects.filter(pk=sync.pk, status=previous).update(
            status=Sync.Status.ACTIVE, next_run_at=following
        )
        if not resumed:
            raise ValidationError(f"{sync.name} changed meanwhile; reload the page.")
        audit.record(
            actor=actor, action="sync.resumed", target=sync, details={"from": previous}, ip=ip
        )
    sync.refresh_from_db()
    return sync


# Cancel a run


def cancel_run(*, run: SyncRun, actor: User | None, ip: str | None = None) -> SyncRun:
    """Cancel a queued run at once, or ask a running one to stop.

    A running run is only marked: its engine reads the status at every checkpoint and stops
    there, sending nothing more; the batches already in flight are recorded if the partner took
    them, so none is half-recorded.
    """
    message = f"Canceled by {_who(actor)}"
    with transaction.atomic():
        if SyncRun.objects.filter(pk=run.pk, status=Status.QUEUED).update(status=Status.CANCELED):
            # Nothing was processed; finish_run counts anything planned as not reached.
            finish_run(run, Status.CANCELED, message)
        elif SyncRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
            status=Status.CANCELED, error_summary=f"{message}; stopping at the next checkpoint."
        ):
            record_event(run.pk, Kind.CANCEL_REQUESTED, f"{message}; stops at the next checkpoint.")
        else:
            run.refresh_from_db(fields=["status"])
            if run.status == Status.HELD:
                raise ValidationError(f"Run {run.pk} is held for approval: approve or reject it.")
            raise ValidationError(
                f"Run {run.pk} has finished ({run.get_status_display().lower()})."
            )
        audit.record(
            actor=actor, action="sync.run_canceled", target=run.sync, details={"run": run.pk}, ip=ip
        )
    run.refresh_from_db()
    return run


# Approve or reject a held run


def _require_held(run: SyncRun) -> None:
    run.refresh_from_db(fields=["status"])
    if run.status != Status.HELD:
        raise ValidationError(
            f"Run {run.pk} is not held for approval ({run.get_status_display().lower()})."
        )


def approve_held_run(*, run: SyncRun, actor: User | None, ip: str | None = None) -> SyncRun:
    """Send what the guard held: a new run with trigger resume, which the guard lets through.

    The new run sends the diff as it is now, which is what the held run would have sent had
    the cohort not changed since. Returns the new run.
    """
    _require_held(run)
    sync = run.sync
    active = SyncRun.objects.filter(sync=sync, status__in=SyncRun.ACTIVE).first()
    if active is not None:
        raise ValidationError(
            f"Run {active.pk} of {sync.name} is {active.get_status_display().lower()}: "
            "approve once it has ended."
        )
    new_run, created = start_run(sync=sync, trigger=SyncRun.Trigger.RESUME, actor=actor, ip=ip)
    if not created:
        raise ValidationError(f"Run {new_run.pk} of {sync.name} started meanwhile.")
    with transaction.atomic():
        SyncRun.objects.filter(pk=run.pk, status=Status.HELD).update(
            # It sent nothing: its plan is not counted as failed, and the summary says who.
            status=Status.CANCELED,
            planned_adds=0,
            planned_removes=0,
            error_summary="",
        )
        record_event(run.pk, Kind.APPROVED, f"Approved by {_who(actor)}.", run=new_run.pk)
        finish_run(run, Status.CANCELED, f"Approved by {_who(actor)}: run {new_run.pk} sends it.")
        audit.record(
            actor=actor,
            action="sync.run_approved",
            target=sync,
            details={"held_run": run.pk, "run": new_run.pk, "removes": run.planned_removes},
            ip=ip,
        )
    return new_run


def reject_held_run(*, run: SyncRun, actor: User | None, ip: str | None = None) -> SyncRun:
    """Drop the held run and pause the sync, so the next schedule does not hold it again."""
    _require_held(run)
    with transaction.atomic():
        if not SyncRun.objects.filter(pk=run.pk, status=Status.HELD).update(
            # It sent nothing: its plan is not counted as failed, and the summary says who.
            status=Status.CANCELED,
            planned_adds=0,
            planned_removes=0,
            error_summary="",
        ):
            raise ValidationError(f"Run {run.pk} was approved or rejected meanwhile.")
        record_event(run.pk, Kind.REJECTED, f"Rejected by {_who(actor)}; the sync is paused.")
        finish_run(run, Status.CANCELED, f"Rejected by {_who(actor)}")
        Sync.objects.filter(pk=run.sync_id, status=Sync.Status.ACTIVE).update(
            status=Sync.Status.PAUSED
        )
        audit.record(
            actor=actor,
            action="sync.run_rejected",
            target=run.sync,
            details={"run": run.pk, "removes": run.planned_removes},
            ip=ip,
        )
    run.refresh_from_db()
    return run


# Full resync, retry and deletion


def full_resync(*, sync: Sync, actor: User | None, ip: str | None = None) -> SyncRun:
    """Re-send every cohort member and remove those who left (the engine's resync trigger).

    The ledger is kept: it is the only record of who must be removed. start_run audits it.
    """
    run, created = start_run(sync=sync, trigger=SyncRun.Trigger.RESYNC, actor=actor, ip=ip)
    if not created:
        raise ValidationError(
            f"Run {run.pk} of {sync.name} is {run.get_status_display().lower()}: "
            "resync once it has ended."
        )
    return run


def retry_failed_members(*, run: SyncRun, actor: User | None, ip: str | None = None) -> SyncRun:
    """Start a run of the same sync that sends again only the members that failed in `run` and
    are still due: adds still in the cohort and not in the ledger, removals still in the ledger
    and no longer in the cohort (the plan restricts the diff, syncs/engine/plan.py). Refused,
    changing nothing, for a run without failures, a sync not active, or while a run is going.
    start_run audits it."""
    sync = run.sync
    if run.status in SyncRun.ACTIVE or not run.failed:
        raise ValidationError(f"Run {run.pk} has no failed members to retry.")
    if sync.status != Sync.Status.ACTIVE:
        raise ValidationError(
            f"{sync.name} is {sync.get_status_display().lower()}: resume it before retrying."
        )
    new_run, created = start_run(
        sync=sync, trigger=SyncRun.Trigger.RETRY, actor=actor, ip=ip, retry_of=run
    )
    if not created:
        raise ValidationError(
            f"Run {new_run.pk} of {sync.name} is {new_run.get_status_display().lower()}: "
            "retry once it has ended."
        )
    return new_run


def delete_sync(*, sync: Sync, actor: User | None, ip: str | None = None) -> None:
    """Delete the sync with its runs and ledger; refused while a run is queued or running."""
    with transaction.atomic():
        # The row lock makes a concurrent start_run wait for the deletion (then fail).
        locked = Sync.objects.select_for_update().get(pk=sync.pk)
        active = SyncRun.objects.filter(sync=locked, status__in=SyncRun.ACTIVE).first()
        if active is not None:
            raise ValidationError(
                f"Run {active.pk} is {active.get_status_display().lower()}: "
                "cancel it or wait for it to end, then delete the sync."
            )
        # The ledger goes first, in one statement, rather than row by row through the cascade.
        ledger_rows, _ = SyncedMember.objects.filter(sync=locked).delete()
        audit.record(
            actor=actor,
            action="sync.deleted",
            target=locked,
            details={
                "name": locked.name,
                "ledger_rows": ledger_rows,
                "runs": SyncRun.objects.filter(sync=locked).count(),
            },
            ip=ip,
        )
        locked.delete()
