"""Verification: after a run that sent adds, read a random sample of them back from the partner
and record how many carry the membership ("verified 97 of 100 sampled").

A run's counts say what the partner accepted; only a read-back says what it applied (a Braze
connection with "update existing only" skips unknown profiles and still answers 201). Only
syncs that ask for it, and only where the partner can read back (Partner.can_verify). The job
runs on the `default` queue, after the run's outcome has committed (it listens to
run_finished), and sends run_verified once its result has committed, for alerts.
"""

import logging
from typing import Any

import redis
from django.db import transaction
from django.utils import timezone

from connections import crypto
from connections.partners.base import Recipient
from connections.partners.http import PartnerError
from syncs.models import Sync, SyncedMember, SyncRun
from syncs.queue import enqueue_verification
from syncs.signals import run_verified

logger = logging.getLogger(__name__)

Verification = SyncRun.Verification
# A run that reached the partner: what it sent is worth reading back.
VERIFIED_STATUSES = (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIALLY_FAILED)
INTERNAL_ERROR = "cohortsync hit an internal error while reading the sample back."


def on_run_finished(sender: Any, run_id: int, status: str, **kwargs: Any) -> None:
    if status in VERIFIED_STATUSES:
        request_verification(run_id)


def request_verification(run_id: int) -> bool:
    """Mark the run's verification pending and queue it, when its sync verifies, its partner
    can, and it added members. Whether it was asked for."""
    run = SyncRun.objects.select_related("sync__connection").filter(pk=run_id).first()
    if run is None or not run.sync.verify or not run.sync.connection.partner.can_verify:
        return False
    if run.added == 0:
        return False  # nothing sent to read back
    pending = SyncRun.objects.filter(pk=run_id, verification="").update(
        verification=Verification.PENDING
    )
    if not pending:
        return False  # asked for already
    try:
        enqueue_verification(run_id)
    except redis.RedisError as exc:
        # It stays pending, as a row: requeue_waiting_work queues it once Redis is back.
        logger.error("Could not queue verification of run %s: %s", run_id, type(exc).__name__)
    return True


def sample(run: SyncRun, size: int) -> list[Recipient]:
    """Up to `size` members this run put into the ledger, at random, addressed as they were
    sent. A member a later run has taken out again is no longer in the ledger, so not sampled."""
    rows = (
        SyncedMember.objects.filter(sync_id=run.sync_id, run_id=run.pk)
        .order_by("?")
        .values_list("pk", "dest_type", "dest_value", "dest_label")[:size]
    )
    return [
        Recipient(ref=pk, identifier_type=kind, identifier=value, alias_label=label)
        for pk, kind, value, label in rows
    ]


def verify_run(run_id: int, *, last_attempt: bool = True) -> str:
    """Read the sample back and record the result on the run. A partner error that may pass
    (429, 5xx) is raised for RQ to retry, unless this is the last attempt; any other is recorded
    as a failed verification, never as 0 verified."""
    run = (
        SyncRun.objects.select_related("sync__connection", "sync__cohort")
        .filter(pk=run_id, verification=Verification.PENDING)
        .first()
    )
    if run is None:
        return "not pending"
    sync: Sync = run.sync
    recipients = sample(run, sync.verify_sample_size)
    if not recipients:
        _finish(run_id, sampled=0, verified=0, error="")
        return "nothing to sample"
    connection = sync.connection
    try:
        secret = crypto.decrypt(connection.encrypted_secret)
        partner = connection.partner(connection.get_config(), secret)
    except (ValueError, crypto.CredentialError) as exc:
        _finish(run_id, sampled=None, verified=None, error=f"The connection cannot be used: {exc}")
        return "failed"
    try:
        verified = partner.verify_members(
            cohort_label=sync.cohort.name, recipients=recipients, options=sync.options
        )
    except PartnerError as exc:
        if exc.retryable and not last_attempt:
            raise
        _finish(run_id, sampled=None, verified=None, error=exc.message)
        return "failed"
    except ValueError as exc:  # a ledger row the partner cannot address (an alias, no label)
        _finish(run_id, sampled=None, verified=None, error=str(exc))
        return "failed"
    except Exception:
        # Never "Verifying…" for ever: the last attempt says it failed, then RQ keeps the trace.
        if last_attempt:
            _finish(run_id, sampled=None, verified=None, error=INTERNAL_ERROR)
        raise
    refs = {recipient.ref for recipient in recipients}
    _finish(run_id, sampled=len(recipients), verified=len(verified & refs), error="")
    return f"verified {len(verified & refs)} of {len(recipients)}"


def _finish(run_id: int, *, sampled: int | None, verified: int | None, error: str) -> None:
    with transaction.atomic():
        SyncRun.objects.filter(pk=run_id).update(
            verification=Verification.FAILED if error else Verification.DONE,
            verify_sampled=sampled,
            verify_verified=verified,
            verified_at=timezone.now(),
            verify_error=error[:255],
        )
        transaction.on_commit(lambda: run_verified.send(sender=SyncRun, run_id=run_id), robust=True)
