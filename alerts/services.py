"""Alert services: settings changes (validated, audited), raising an alert, delivering it."""

import logging
import re
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alerts import channels
from alerts.models import AlertDelivery, AlertSettings
from alerts.queue import enqueue_delivery
from alerts.texts import Alert, sample_alert
from connections import crypto
from core import audit, egress

logger = logging.getLogger(__name__)

Event = AlertDelivery.Event
Status = AlertDelivery.Status
MAX_RECIPIENTS = 20

# Which settings toggle lets each event through; test alerts always go.
EVENT_TOGGLES = {
    Event.RUN_FAILED: "on_run_failed",
    Event.RUN_PARTIALLY_FAILED: "on_partial_failure",
    Event.RUN_HELD: "on_run_held",
    # A run whose sample is missing at the partner did not do what its counts say.
    Event.VERIFICATION_LOW: "on_run_failed",
    Event.CONNECTION_NEEDS_ATTENTION: "on_connection_needs_attention",
    Event.SYNC_RECOVERED: "on_recovery",
    Event.CONNECTION_RECOVERED: "on_recovery",
}
TOGGLES = (
    "on_run_failed",
    "on_partial_failure",
    "on_run_held",
    "on_connection_needs_attention",
    "on_recovery",
)


# Settings


def parse_recipients(raw: str) -> list[str]:
    """Addresses separated by commas, semicolons or lines; each checked, duplicates dropped."""
    recipients: list[str] = []
    for address in re.split(r"[,;\s]+", raw.strip()):
        if not address or address.lower() in (known.lower() for known in recipients):
            continue
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(f"{address!r} is not an email address.") from None
        recipients.append(address)
    if len(recipients) > MAX_RECIPIENTS:
        raise ValidationError(f"At most {MAX_RECIPIENTS} recipients; use a mailing list.")
    return recipients


def validate_webhook_url(raw: str) -> str:
    """A full https URL (http only with COHORTSYNC_ALLOW_INSECURE_ENDPOINTS, for local tests)."""
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError("The webhook URL must look like https://hooks.slack.com/services/….")
    try:
        parts.port  # noqa: B018 -- urlsplit only validates the port when it is read
    except ValueError:
        raise ValidationError("The webhook URL has an invalid port.") from None
    if parts.username or parts.password:
        raise ValidationError("The webhook URL must not contain a user name or password.")
    if parts.scheme == "http" and not settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS:
        raise ValidationError(
            "The webhook URL must use https. Plain http is only allowed when "
            "COHORTSYNC_ALLOW_INSECURE_ENDPOINTS is on (development only)."
        )
    if len(value) > 2000:
        raise ValidationError("The webhook URL is too long.")
    try:
        # Saved once, posted to many times: where it resolves now is worth checking here too.
        egress.check_url(value, resolve_now=True)
    except egress.EgressRefused as exc:
        raise ValidationError(f"The webhook URL is not allowed: {exc}") from None
    return value


def update_alert_settings(
    *,
    email_enabled: bool,
    email_recipients: str,
    webhook_enabled: bool,
    webhook_url: str | None,
    remove_webhook: bool = False,
    toggles: dict[str, bool],
    partial_failure_threshold_pct: int | None = None,
    actor: User | AnonymousUser | None,
    ip: str | None = None,
) -> AlertSettings:
    """Save the settings; a blank `webhook_url` keeps the stored one, a None threshold the
    stored threshold. Nothing is written when anything is invalid. The audit names what
    changed, never the URL."""
    recipients = parse_recipients(email_recipients)
    if partial_failure_threshold_pct is not None and not 1 <= partial_failure_threshold_pct <= 100:
        raise ValidationError("The share of failed members must be 1 to 100 %.")
    url = validate_webhook_url(webhook_url) if webhook_url else None
    if email_enabled and not recipients:
        raise ValidationError("Enter at least one recipient to turn email alerts on.")
    row = AlertSettings.load()
    keeps_webhook = url is not None or (row.has_webhook and not remove_webhook)
    if webhook_enabled and not keeps_webhook:
        raise ValidationError("Enter the webhook URL to turn webhook alerts on.")
    unknown = set(toggles) - set(TOGGLES)
    if unknown:
        raise ValueError(f"Unknown alert toggles: {sorted(unknown)}")
    wanted: dict[str, Any] = {
        "email_enabled": email_enabled,
        "email_recipients": recipients,
        "webhook_enabled": webhook_enabled,
        **toggles,
    }
    if partial_failure_threshold_pct is not None:
        wanted["partial_failure_threshold_pct"] = partial_failure_threshold_pct
    changed = sorted(name for name, value in wanted.items() if getattr(row, name) != value)
    for name, value in wanted.items():
        setattr(row, name, value)
    if url is not None:
        row.encrypted_webhook_url = crypto.encrypt(url)
        row.webhook_hint = crypto.hint(url)
        changed.append("webhook_url")
    elif remove_webhook and row.has_webhook:
        row.encrypted_webhook_url = row.webhook_hint = ""
        changed.append("webhook_url removed")
    row.updated_by = actor if isinstance(actor, User) else None
    with transaction.atomic():
        row.save()
        audit.record(
            actor=actor,
            action="alerts.settings_updated",
            target=row,
            details={"changed": changed},
            ip=ip,
        )
    return row


# Raising an alert


def raise_alert(alert: Alert) -> list[AlertDelivery]:
    """One delivery per active channel, if the settings want this event; queued after commit."""
    row = AlertSettings.load()
    toggle = EVENT_TOGGLES.get(Event(alert.event))
    if toggle is not None and not getattr(row, toggle):
        return []
    return _queue(alert, row.active_channels())


def send_test_alert(*, actor: User | AnonymousUser, ip: str | None = None) -> list[AlertDelivery]:
    row = AlertSettings.load()
    active = row.active_channels()
    if not active:
        raise ValidationError("Turn on email or webhook alerts and save them first.")
    with transaction.atomic():
        deliveries = _create(sample_alert(actor.get_username() or "someone"), active)
        audit.record(
            actor=actor,
            action="alerts.test_sent",
            target=row,
            details={"channels": active, "deliveries": [d.pk for d in deliveries]},
            ip=ip,
        )
    _enqueue(deliveries)
    return deliveries


def _queue(alert: Alert, active: list[str]) -> list[AlertDelivery]:
    if not active:
        return []
    with transaction.atomic():
        deliveries = _create(alert, active)
    _enqueue(deliveries)
    return deliveries


def _create(alert: Alert, active: list[str]) -> list[AlertDelivery]:
    return [
        AlertDelivery.objects.create(
            channel=channel,
            event=alert.event,
            subject_type=alert.subject_type,
            subject_id=alert.subject_id,
            subject_label=alert.subject_label[:255],
            title=alert.title[:255],
            text=alert.text,
            url=alert.url[:500],
        )
        for channel in active
    ]


def _enqueue(deliveries: list[AlertDelivery]) -> None:
    # Called once the delivery rows have committed, so the worker always finds them.
    for delivery in deliveries:
        try:
            enqueue_delivery(delivery.pk)
        except redis.RedisError as exc:
            # The delivery stays pending, as a row; it is queued again once Redis is back.
            logger.error("Could not queue alert delivery %s: %s", delivery.pk, type(exc).__name__)


# Delivering it


def deliver(delivery_id: int, *, last_attempt: bool) -> AlertDelivery | None:
    """One attempt at one delivery. A failure that may pass stays pending (the job retries)
    unless this was the last attempt; what failed is kept on the row either way."""
    claimed = AlertDelivery.objects.filter(pk=delivery_id, status=Status.PENDING).update(
        attempts=F("attempts") + 1
    )
    if not claimed:
        return None  # already sent or failed
    delivery = AlertDelivery.objects.get(pk=delivery_id)
    try:
        _send(delivery, AlertSettings.load())
    except channels.DeliveryError as exc:
        logger.warning(
            "Alert delivery %s by %s failed (attempt %s): %s",
            delivery.pk,
            delivery.channel,
            delivery.attempts,
            exc.message,
        )
        final = last_attempt or not exc.retryable
        _finish(delivery, Status.FAILED if final else Status.PENDING, exc.message)
    else:
        _finish(delivery, Status.SENT, "")
    return delivery


def _send(delivery: AlertDelivery, row: AlertSettings) -> None:
    if delivery.channel == AlertDelivery.Channel.WEBHOOK:
        if not (row.webhook_enabled and row.has_webhook):
            raise channels.DeliveryError("Webhook alerts were turned off.", retryable=False)
        try:
            url = crypto.decrypt(row.encrypted_webhook_url)
        except crypto.CredentialError as exc:
            raise channels.DeliveryError(str(exc), retryable=False) from None
        channels.post_webhook(url, webhook_payload(delivery))
    else:
        if not (row.email_enabled and row.email_recipients):
            raise channels.DeliveryError("Email alerts were turned off.", retryable=False)
        channels.send_email(
            list(row.email_recipients),
            f"[cohortsync] {delivery.title}",
            f"{delivery.text}\n\n{delivery.url}\n",
        )


def webhook_payload(delivery: AlertDelivery) -> dict[str, Any]:
    """Slack reads `text`; other receivers get the event, its subject and the link as fields."""
    return {
        "text": f"*{delivery.title}*\n{delivery.text}\n{delivery.url}",
        "event": delivery.event,
        "subject": {
            "type": delivery.subject_type,
            "id": delivery.subject_id,
            "name": delivery.subject_label,
        },
        "url": delivery.url,
    }


def _finish(delivery: AlertDelivery, status: str, error: str) -> None:
    delivery.status = status
    delivery.error = error
    delivery.finished_at = timezone.now() if status != Status.PENDING else None
    delivery.save(update_fields=["status", "error", "finished_at"])
