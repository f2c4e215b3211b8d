"""How a run ends: its final status with counts that add up, and what a refused credential
does to its connection and that connection's syncs."""

import logging

import redis
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from connections.models import Connection
from connections.signals import connection_state_changed
from core import audit
from syncs.engine.errors import record_unreached
from syncs.engine.events import Kind, record_event
from syncs.models import Sync, SyncRun, SyncRunPlanItem
from syncs.queue import enqueue_run
from syncs.signals import run_finished

logger = logging.getLogger(__name__)

Status = SyncRun.Status


def refuse_connection(connection: Connection, message: str) -> None:
    """The partner refused the credentials: one alert, every sync of the connection paused."""
    with transaction.atomic():
        changed = (
            Connection.objects.filter(pk=connection.pk)
            .exclude(state=Connection.State.NEEDS_ATTENTION)
            .update(state=Connection.State.NEEDS_ATTENTION, last_error=message)
        )
        Sync.objects.filter(connection_id=connection.pk, status=Sync.Status.ACTIVE).update(
            status=Sync.Status.NEEDS_ATTENTION
        )
        if changed:
            audit.record(
                actor=None,
                action="connection.auth_failed",
                target=connection,
                details={"message": message},
            )
            transaction.on_commit(
                lambda: connection_state_changed.send(
                    sender=Connection,
                    connection_id=connection.pk,
                    state=Connection.State.NEEDS_ATTENTION,
                ),
                robust=True,
            )


def sentence(text: str) -> str:
    """`text` ending as a sentence, so that another can follow it ("Invalid API key: ••••" would
    run into the next one)."""
    text = text.strip()
    return text if not text or text.endswith((".", "!", "?")) else f"{text}."


def finish_run(run: SyncRun, status: str, message: str) -> None:
    """End the run so its counts add up: planned = added + removed + failed + skipped.

    What a stopped run did not reach counts as failed; what a finished run did not reach had
    left its diff meanwhile (the member left, or came back), and counts as skipped. A held run
    that is approved or rejected sent nothing: its plan moves into the message.
    """
    with transaction.atomic():
        current = SyncRun.objects.select_for_update().get(pk=run.pk)
        if current.status == Status.HELD:
            message = (
                f"{message} (It would have added {current.planned_adds:,} and removed "
                f"{current.planned_removes:,}.)"
            ).strip()
            current.planned_adds = current.planned_removes = 0
        elif current.status == Status.CANCELED and current.error_summary:
            message = current.error_summary  # keeps who canceled it
        unreached = max(0, current.planned - current.processed)
        if unreached and status in (Status.FAILED, Status.CANCELED):
            current.failed += unreached
            # Named in the errors export and member lookup, with why the run stopped.
            record_unreached(current, message or Status(status).label)
            message = f"{sentence(message)} {unreached:,} member(s) were not reached.".strip()
        elif unreached and status in (Status.SUCCEEDED, Status.PARTIALLY_FAILED):
            current.skipped += unreached
            message = f"{sentence(message)} {unreached:,} left the diff during the run.".strip()
        now = timezone.now()
        current.status = status
        current.finished_at = now if status != Status.HELD else None
        current.error_summary = message
        current.save(
            update_fields=[
                "status",
                "finished_at",
                "error_summary",
                "failed",
                "skipped",
                "planned_adds",
                "planned_removes",
            ]
        )
        sent = (
            f"{current.added:,} updated"
            if current.updates_traits
            else f"+{current.added:,}{'' if current.adds_applied else ' sent'} -{current.removed:,}"
        )
        summary = (
            sent
            + (f", {current.failed:,} failed" if current.failed else "")
            + (f", {current.skipped:,} skipped" if current.skipped else "")
        )
        # The plan served its run (a held run's approval plans anew): one bulk DELETE on its key.
        SyncRunPlanItem.objects.filter(run_id=current.pk).delete()
        Sync.objects.filter(pk=current.sync_id).update(
            last_run_status=status, last_run_at=now, last_run_summary=summary[:255]
        )
        # Listeners (alerts) hear of the outcome once it has committed.
        transaction.on_commit(
            lambda: run_finished.send(sender=SyncRun, run_id=current.pk, status=status), robust=True
        )
        record_event(
            current.pk,
            Kind.HELD if status == Status.HELD else Kind.FINISHED,
            message or current.get_status_display(),
            status=status,
            added=current.added,
            removed=current.removed,
            failed=current.failed,
            skipped=current.skipped,
        )


def learn_batch_size(connection: Connection, setting: str, size: int, note: str) -> None:
    """A run learnt that the partner takes at most `size` recipients a request: keep it in the
    connection's `setting`, with an entry on the connection's timeline saying why."""
    with transaction.atomic():
        current = Connection.objects.select_for_update().get(pk=connection.pk)
        if int(current.config.get(setting) or size + 1) <= size:
            return  # another run learnt it first
        current.config = {**current.config, setting: size}
        current.save(update_fields=["config"])
        connection.config = current.config
        audit.record(
            actor=None,
            action="connection.batch_size_learnt",
            target=current,
            details={"setting": setting, "size": size, "message": note},
        )


def interrupt_run(run: SyncRun, message: str, *, resume_in: float = 0.0) -> bool:
    """Hand a running run back to the queue, to resume from its last checkpoint with a job of its
    own, `resume_in` seconds from now. Only the worker holding the run can (its interruptions
    count is still the run's). When Redis does not take the job, the reaper queues it once
    Redis is back."""
    with transaction.atomic():
        handed_back = SyncRun.objects.filter(
            pk=run.pk, status=Status.RUNNING, interruptions=run.interruptions
        ).update(status=Status.QUEUED, interruptions=F("interruptions") + 1)
        if handed_back:
            record_event(run.pk, Kind.INTERRUPTED, message)
    if not handed_back:
        return False
    try:
        enqueue_run(run.pk, attempt=run.interruptions + 1, delay=resume_in)
    except redis.RedisError as exc:
        logger.warning("Run %s waits for Redis to be queued again: %s", run.pk, type(exc).__name__)
    return True
