"""What alerts hears from syncs and connections, after their changes commit.

A receiver runs in the process that finished the run or the check. It only records the state
and queues deliveries; a worker sends them. It never raises into its sender.
"""

import logging
from typing import Any

from django.conf import settings

from alerts import noise, texts
from alerts.models import AlertSettings, AlertState
from alerts.services import raise_alert
from connections.models import Connection
from syncs.models import SyncRun

logger = logging.getLogger(__name__)

State = AlertState.State

# What a finished run says about its sync. A partially failed run reached the partner: the
# members it refused are listed on the run page, and the sync itself works again, unless the
# settings ask to hear of a run that failed too many of its members (partly_failing).
RUN_OUTCOMES = {
    SyncRun.Status.FAILED: State.FAILING,
    SyncRun.Status.HELD: State.HELD,
    SyncRun.Status.SUCCEEDED: State.OK,
    SyncRun.Status.PARTIALLY_FAILED: State.OK,
}
CONNECTION_OUTCOMES = {
    Connection.State.NEEDS_ATTENTION: State.FAILING,
    Connection.State.HEALTHY: State.OK,
}


def on_run_finished(sender: Any, run_id: int, status: str, **kwargs: Any) -> None:
    try:
        alert_on_run(run_id, status)
    except Exception:
        logger.exception("Could not raise the alert for run %s", run_id)


def on_connection_state_changed(sender: Any, connection_id: int, state: str, **kwargs: Any) -> None:
    try:
        alert_on_connection(connection_id, state)
    except Exception:
        logger.exception("Could not raise the alert for connection %s", connection_id)


def alert_on_run(run_id: int, status: str) -> None:
    observed = RUN_OUTCOMES.get(SyncRun.Status(status))
    if observed is None:
        return  # canceled or skipped: says nothing about the sync's health
    run = (
        SyncRun.objects.select_related("sync__connection", "sync__cohort").filter(pk=run_id).first()
    )
    if run is None:
        return
    if run.status == SyncRun.Status.PARTIALLY_FAILED and AlertSettings.load().failed_too_many(
        failed=run.failed, planned=run.planned
    ):
        observed = State.PARTLY_FAILING
    if observed == State.FAILING and run.sync.connection.state == Connection.State.NEEDS_ATTENTION:
        # The connection's own alert says it: one alert, not one per sync of the connection.
        return
    change = noise.record_state(AlertState.SubjectType.SYNC, run.sync_id, observed)
    if change is not None:
        raise_alert(texts.run_alert(run, change))


def on_run_verified(sender: Any, run_id: int, **kwargs: Any) -> None:
    try:
        alert_on_verification(run_id)
    except Exception:
        logger.exception("Could not raise the verification alert for run %s", run_id)


def _below_threshold(run: SyncRun | None) -> bool:
    share = run.verified_pct if run is not None else None
    return share is not None and share < settings.COHORTSYNC_VERIFY_ALERT_PCT


def alert_on_verification(run_id: int) -> None:
    """One alert when a sync's verified share falls below the threshold, not one per run: the
    sync's verification before this one must have been above it (or this is its first)."""
    run = (
        SyncRun.objects.select_related("sync__connection", "sync__cohort").filter(pk=run_id).first()
    )
    if run is None or not _below_threshold(run):
        return
    previous = (
        SyncRun.objects.filter(
            sync_id=run.sync_id, verification=SyncRun.Verification.DONE, verify_sampled__gt=0
        )
        .exclude(pk=run.pk)
        .filter(queued_at__lt=run.queued_at)
        .order_by("-queued_at", "-id")
        .first()
    )
    if _below_threshold(previous):
        return
    raise_alert(texts.verification_alert(run, settings.COHORTSYNC_VERIFY_ALERT_PCT))


def alert_on_connection(connection_id: int, state: str) -> None:
    observed = CONNECTION_OUTCOMES.get(Connection.State(state))
    connection = Connection.objects.filter(pk=connection_id).first()
    if observed is None or connection is None:
        return
    change = noise.record_state(AlertState.SubjectType.CONNECTION, connection_id, observed)
    if change is not None:
        raise_alert(texts.connection_alert(connection, change))
