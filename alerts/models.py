"""Alert settings (one row), the alert state of each sync and connection, and every delivery."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class AlertSettings(models.Model):
    """Where alerts go and which events send one. A single row, pk 1 (see `load`)."""

    email_enabled = models.BooleanField(default=False)
    email_recipients = models.JSONField(default=list, blank=True)
    webhook_enabled = models.BooleanField(default=False)
    # A Fernet token (connections.crypto): a Slack webhook URL is itself the credential.
    encrypted_webhook_url = models.TextField(blank=True)
    webhook_hint = models.CharField(max_length=4, blank=True)
    on_run_failed = models.BooleanField(default=True)
    on_run_held = models.BooleanField(default=True)
    on_connection_needs_attention = models.BooleanField(default=True)
    # A run that ended with some members refused, when at least this share of them failed.
    on_partial_failure = models.BooleanField(default=False)
    partial_failure_threshold_pct = models.PositiveSmallIntegerField(default=10)
    on_recovery = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "alert settings"
        permissions = [("manage_alerts", "Can configure alerts and send a test alert")]

    def __str__(self) -> str:
        return "Alert settings"

    @classmethod
    def load(cls) -> "AlertSettings":
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row

    @property
    def has_webhook(self) -> bool:
        return bool(self.encrypted_webhook_url)

    @property
    def masked_webhook_url(self) -> str:
        return f"••••{self.webhook_hint}" if self.webhook_hint else "••••"

    def failed_too_many(self, *, failed: int, planned: int) -> bool:
        """Whether a partially failed run failed enough of its members to alert: at least the
        threshold's share of what it planned to send (skipped members included, since they
        count in the plan too)."""
        if not self.on_partial_failure or planned <= 0:
            return False
        return failed * 100 >= self.partial_failure_threshold_pct * planned

    def active_channels(self) -> list[str]:
        """The channels an alert is sent to now: turned on and configured."""
        channels: list[str] = []
        if self.email_enabled and self.email_recipients:
            channels.append(AlertDelivery.Channel.EMAIL)
        if self.webhook_enabled and self.has_webhook:
            channels.append(AlertDelivery.Channel.WEBHOOK)
        return channels


class AlertState(models.Model):
    """Whether a sync or connection is in trouble, so only changes send alerts: the first
    failure and the recovery, never one alert per failed run."""

    class SubjectType(models.TextChoices):
        SYNC = "sync", "Sync"
        CONNECTION = "connection", "Connection"

    class State(models.TextChoices):
        OK = "ok", "OK"
        FAILING = "failing", "Failing"
        # Runs reach the partner, but too many of their members fail (AlertSettings).
        PARTLY_FAILING = "partly_failing", "Partly failing"
        HELD = "held", "Held for approval"

    subject_type = models.CharField(max_length=16, choices=SubjectType.choices)
    # No foreign key: the state outlives nothing, and a deleted subject leaves a harmless row.
    subject_id = models.BigIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.OK)
    since = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subject_type", "subject_id"], name="one_alert_state_per_subject"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subject_type} {self.subject_id}: {self.state}"


class AlertDelivery(models.Model):
    """One alert to one channel: queued here, sent by a worker, its outcome kept."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class Event(models.TextChoices):
        RUN_FAILED = "run_failed", "Run failed"
        RUN_PARTIALLY_FAILED = "run_partially_failed", "Run failed for many members"
        RUN_HELD = "run_held", "Run held for approval"
        VERIFICATION_LOW = "verification_low", "Verification below threshold"
        SYNC_RECOVERED = "sync_recovered", "Sync recovered"
        CONNECTION_NEEDS_ATTENTION = "connection_needs_attention", "Connection needs attention"
        CONNECTION_RECOVERED = "connection_recovered", "Connection recovered"
        TEST = "test", "Test alert"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    channel = models.CharField(max_length=16, choices=Channel.choices)
    event = models.CharField(max_length=32, choices=Event.choices)
    subject_type = models.CharField(max_length=16, blank=True)
    subject_id = models.BigIntegerField(null=True, blank=True)
    subject_label = models.CharField(max_length=255, blank=True)
    title = models.CharField(max_length=255)
    text = models.TextField()
    url = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "alert deliveries"

    def __str__(self) -> str:
        return f"{self.event} by {self.channel}: {self.status}"
