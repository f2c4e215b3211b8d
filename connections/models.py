from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from connections.partners import PARTNERS
from connections.partners.base import Direction, Partner, PartnerConfig


class ConnectionQuerySet(models.QuerySet["Connection"]):
    def destinations(self) -> "ConnectionQuerySet":
        """Connections a sync can send to: a source's partner takes no members."""
        kinds = [kind for kind, p in PARTNERS.items() if Direction.DESTINATION in p.directions]
        return self.filter(kind__in=kinds)


class Connection(models.Model):
    """An account at a partner, with its typed config and encrypted credentials: a destination
    (syncs send members to it) or a source (cohorts come from it), as its partner declares."""

    class Kind(models.TextChoices):
        BRAZE = "braze", "Braze"
        APPSFLYER = "appsflyer", "AppsFlyer"
        AMPLITUDE = "amplitude", "Amplitude"

    class State(models.TextChoices):
        UNTESTED = "untested", "Not tested yet"
        HEALTHY = "healthy", "Healthy"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    name = models.CharField(max_length=100, unique=True)
    config = models.JSONField(default=dict)
    # A Fernet token (see connections.crypto); the clear secret never touches the database.
    encrypted_secret = models.TextField()
    secret_hint = models.CharField(max_length=4, blank=True)
    # Partner-defined identity of the destination account, unique across connections
    # (AppsFlyer: one connection per app and platform). Null when the partner has none.
    account_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    state = models.CharField(max_length=32, choices=State.choices, default=State.UNTESTED)
    last_error = models.TextField(blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set while its syncs remove what they put in the destination; it is deleted after that.
    deletion_requested_at = models.DateTimeField(null=True, blank=True)
    deletion_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("manage_connections", "Can add, edit, delete and test connections")]

    def __str__(self) -> str:
        return self.name

    @property
    def partner(self) -> type[Partner]:
        return PARTNERS[self.kind]

    @property
    def is_destination(self) -> bool:
        return Direction.DESTINATION in self.partner.directions

    @property
    def direction_label(self) -> str:
        """ "destination", "source" or both, for pages that list connections of every kind."""
        return " and ".join(d.value for d in Direction if d in self.partner.directions)

    def get_config(self) -> PartnerConfig:
        """The typed config; raises ValueError with a clear message when it is not valid."""
        return self.partner.parse_config(self.config)

    @property
    def masked_secret(self) -> str:
        return f"••••{self.secret_hint}" if self.secret_hint else "••••"


class ConnectionCheck(models.Model):
    """One press of "Test connection": queued here, run by a worker, its outcome kept."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        OK = "ok", "Credentials accepted"
        REFUSED = "refused", "Credentials refused"
        UNREACHABLE = "unreachable", "Partner unreachable"
        FAILED = "failed", "Check failed"

    FINISHED = {Status.OK, Status.REFUSED, Status.UNREACHABLE, Status.FAILED}

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="checks")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"check of {self.connection_id}: {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class ImportKey(models.Model):
    """A data-import key a partner uses to push cohorts in. Only a keyed hash is stored."""

    class Partner(models.TextChoices):
        APPSFLYER = "appsflyer", "AppsFlyer"
        AMPLITUDE = "amplitude", "Amplitude"
        MIXPANEL = "mixpanel", "Mixpanel"
        SEGMENT = "segment", "Segment"
        CUSTOM = "custom", "Custom"

    name = models.CharField(max_length=100)
    partner = models.CharField(max_length=32, choices=Partner.choices)
    # The public start of the key, used to find the row; the rest is checked against key_hash.
    prefix = models.CharField(max_length=32, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("manage_import_keys", "Can generate, rotate and revoke data-import keys")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def status(self, now: datetime | None = None) -> str:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.replaced_by_id is not None:
            return "rotating"
        return "active"

    def is_usable(self, now: datetime | None = None) -> bool:
        return self.status(now) in {"active", "rotating"}
