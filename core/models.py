from django.conf import settings
from django.db import models
from django.utils import timezone

# What each recorded action reads as on a page; the code stays the filterable name.
# tests/core/test_audit_labels.py fails when an action recorded anywhere has no label here.
ACTION_LABELS = {
    "alerts.settings_updated": "Alert settings changed",
    "alerts.test_sent": "Test alert sent",
    "api_token.created": "API token created",
    "api_token.revoked": "API token revoked",
    "cohort.created": "Cohort created",
    "cohort.csv_applied": "CSV upload applied",
    "cohort.csv_uploaded": "CSV uploaded",
    "cohort.deleted": "Cohort deleted",
    "cohort.members_added": "Members added",
    "cohort.members_removed": "Members removed",
    "cohort.pull_changed": "Amplitude pull cadence changed",
    "cohort.pull_created": "Amplitude cohort pulled",
    "cohort.pull_stopped": "Amplitude pull stopped",
    "cohort.renamed": "Cohort renamed",
    "connection.auth_failed": "Credentials refused by the partner",
    "connection.batch_size_learnt": "Batch size lowered after a partner refusal",
    "connection.check_requested": "Connection test requested",
    "connection.checked": "Connection tested",
    "connection.created": "Connection created",
    "connection.deleted": "Connection deleted",
    "connection.deletion_canceled": "Connection deletion canceled",
    "connection.deletion_requested": "Connection deletion requested",
    "connection.updated": "Connection changed",
    "credentials.rotated": "Credentials re-encrypted with a new key",
    "import_key.generated": "Key generated",
    "import_key.revoked": "Key revoked",
    "import_key.rotated": "Key rotated",
    "login.locked_out": "Login locked out",
    "login.unlocked": "Login unlocked",
    "sync.created": "Sync created",
    "sync.deleted": "Sync deleted",
    "sync.paused": "Sync paused",
    "sync.resumed": "Sync resumed",
    "sync.run_approved": "Held run approved",
    "sync.run_canceled": "Run canceled",
    "sync.run_rejected": "Held run rejected",
    "sync.run_requested": "Run requested",
    "sync.updated": "Sync changed",
    "user.created": "User created",
}


class AuditEntry(models.Model):
    """One change made by a person or by the system, written in the change's own transaction."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept in clear so the entry still says who acted after the user is deleted.
    actor_label = models.CharField(max_length=254)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, db_index=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id", "-created_at"])]
        verbose_name_plural = "audit entries"
        # core has no model of its own for logins; their permission lives here.
        permissions = [("unlock_logins", "Can see and lift login lockouts")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"

    @property
    def action_label(self) -> str:
        """The action as a person reads it; an unknown code (an older release's) as words."""
        words = self.action.replace(".", " ").replace("_", " ")
        return ACTION_LABELS.get(self.action) or words.capitalize()
