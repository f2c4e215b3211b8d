"""Connection services: every change runs in a transaction that also writes its audit entry."""

import logging
from typing import Any

import redis
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from connections import crypto
from connections.models import Connection, ConnectionCheck
from connections.partners import PARTNERS
from connections.partners.base import PartnerConfig
from connections.partners.http import PartnerError
from connections.queue import enqueue_connection_check
from connections.signals import connection_state_changed
from core import audit

logger = logging.getLogger(__name__)


class ConnectionConflict(ValueError):
    """Another connection already has this name or destination account."""


def _save_unique(connection: Connection) -> None:
    try:
        with transaction.atomic():
            connection.save()
    except IntegrityError:
        if Connection.objects.filter(name=connection.name).exclude(pk=connection.pk).exists():
            raise ConnectionConflict(
                f"A connection named {connection.name!r} already exists."
            ) from None
        raise ConnectionConflict(
            "A connection to this destination account already exists: one connection per app."
        ) from None


def create_connection(
    *,
    kind: str,
    name: str,
    config: PartnerConfig,
    secret: str,
    actor: User | None,
    ip: str | None = None,
) -> Connection:
    partner = PARTNERS[kind]
    connection = Connection(
        kind=kind,
        name=name.strip(),
        config=config.to_dict(),
        encrypted_secret=crypto.encrypt(secret),
        secret_hint=crypto.hint(partner.hinted_part(secret)),
        account_key=partner.account_key(config),
        created_by=actor,
    )
    with transaction.atomic():
        _save_unique(connection)
        audit.record(
            actor=actor,
            action="connection.created",
            target=connection,
            details={"kind": kind, "config": connection.config},
            ip=ip,
        )
    return connection


def update_connection(
    *,
    connection: Connection,
    name: str,
    config: PartnerConfig,
    secret: str | None,
    actor: User | None,
    ip: str | None = None,
) -> Connection:
    """Save edits; a blank `secret` keeps the stored one. The audit lists what changed."""
    before = {"name": connection.name, **connection.config}
    connection.name = name.strip()
    connection.config = config.to_dict()
    connection.account_key = connection.partner.account_key(config)
    changed = sorted(
        key
        for key, value in {"name": connection.name, **connection.config}.items()
        if before.get(key) != value
    )
    if secret:
        connection.encrypted_secret = crypto.encrypt(secret)
        connection.secret_hint = crypto.hint(connection.partner.hinted_part(secret))
        # A new credential has not been proven yet: nothing said about the old one holds.
        connection.state = Connection.State.UNTESTED
        connection.last_error = ""
        connection.last_checked_at = None
        changed.append("credentials")
    with transaction.atomic():
        _save_unique(connection)
        audit.record(
            actor=actor,
            action="connection.updated",
            target=connection,
            details={"changed": changed},
            ip=ip,
        )
    return connection


def delete_connection(*, connection: Connection, actor: User | None, ip: str | None = None) -> None:
    with transaction.atomic():
        audit.record(
            actor=actor,
            action="connection.deleted",
            target=connection,
            details={"kind": connection.kind, "name": connection.name},
            ip=ip,
        )
        connection.delete()


def request_connection_check(
    *, connection: Connection, actor: User | None, ip: str | None = None, queue_now: bool = True
) -> ConnectionCheck:
    """Queue a "Test connection" job; the worker makes the partner call.

    With `queue_now` false the check only waits as a row, for requeue_waiting_checks: what
    seed_demo asks for before the stack, and its Redis, are up.
    """
    with transaction.atomic():
        check = ConnectionCheck.objects.create(connection=connection, requested_by=actor)
        audit.record(
            actor=actor,
            action="connection.check_requested",
            target=connection,
            details={"check": check.pk},
            ip=ip,
        )
    if not queue_now:
        return check
    try:
        enqueue_connection_check(check.pk)
    except redis.RedisError as exc:
        # The check waits as a row; it is queued again once Redis is back.
        logger.error("Could not queue connection check %s: %s", check.pk, type(exc).__name__)
        check.message = "The job queue (Redis) is unreachable: the check runs once it is back."
        check.save(update_fields=["message"])
    return check


def _finish_check(check: ConnectionCheck, status: str, message: str) -> None:
    check.status = status
    check.message = message
    check.finished_at = timezone.now()
    check.save(update_fields=["status", "message", "finished_at"])


def run_connection_check(check_id: int) -> ConnectionCheck | None:
    """Run one queued check: claim it, call the partner, record the outcome on the connection."""
    claimed = ConnectionCheck.objects.filter(
        pk=check_id, status=ConnectionCheck.Status.QUEUED
    ).update(status=ConnectionCheck.Status.RUNNING)
    if not claimed:
        return None  # already run, or gone with its connection
    check = ConnectionCheck.objects.select_related("connection").get(pk=check_id)
    connection = check.connection
    try:
        partner = connection.partner(
            connection.get_config(), crypto.decrypt(connection.encrypted_secret)
        )
        proof = partner.check()
    except PartnerError as exc:
        outcome = _outcome_of_error(exc)
        message = exc.message
    except (ValueError, crypto.CredentialError) as exc:
        outcome, message = ConnectionCheck.Status.FAILED, str(exc)
    else:
        outcome, message = ConnectionCheck.Status.OK, proof
    _record_check_outcome(check, outcome, message)
    return check


def _outcome_of_error(exc: PartnerError) -> str:
    if exc.auth:
        return ConnectionCheck.Status.REFUSED
    if exc.unreachable or exc.retryable:
        return ConnectionCheck.Status.UNREACHABLE
    return ConnectionCheck.Status.FAILED


def _record_check_outcome(check: ConnectionCheck, outcome: str, message: str) -> None:
    connection = check.connection
    fields: dict[str, Any] = {}
    if outcome == ConnectionCheck.Status.OK:
        fields = {
            "state": Connection.State.HEALTHY,
            "last_error": "",
            "last_checked_at": timezone.now(),
        }
    elif outcome == ConnectionCheck.Status.REFUSED:
        fields = {
            "state": Connection.State.NEEDS_ATTENTION,
            "last_error": message,
            "last_checked_at": timezone.now(),
        }
    # Unreachable or failed: the partner said nothing about the key, so its state stands.
    with transaction.atomic():
        _finish_check(check, outcome, message)
        if fields:
            state_changed = (
                Connection.objects.filter(pk=connection.pk).exclude(state=fields["state"]).exists()
            )
            Connection.objects.filter(pk=connection.pk).update(**fields)
            if state_changed:
                _announce_state_change(connection.pk, fields["state"])
        audit.record(
            actor=None,
            action="connection.checked",
            target=connection,
            details={
                "outcome": outcome,
                "message": message,
                "requested_by": check.requested_by.get_username() if check.requested_by else None,
            },
        )


def record_refused_credentials(*, connection_id: int, message: str) -> bool:
    """A partner refused the stored credentials outside a check or a sync run (an Amplitude
    pull): the connection needs attention, audited and announced once. True if it changed."""
    with transaction.atomic():
        changed = (
            Connection.objects.filter(pk=connection_id)
            .exclude(state=Connection.State.NEEDS_ATTENTION)
            .update(state=Connection.State.NEEDS_ATTENTION, last_error=message)
        )
        if changed:
            audit.record(
                actor=None,
                action="connection.auth_failed",
                target=Connection.objects.get(pk=connection_id),
                details={"message": message},
            )
            _announce_state_change(connection_id, Connection.State.NEEDS_ATTENTION)
    return bool(changed)


def _announce_state_change(connection_id: int, state: str) -> None:
    """Tell listeners (alerts) once the new state has committed."""
    transaction.on_commit(
        lambda: connection_state_changed.send(
            sender=Connection, connection_id=connection_id, state=state
        ),
        robust=True,
    )
