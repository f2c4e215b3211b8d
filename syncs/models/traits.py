"""The trait ledger: per trait sync and member, the attribute values Braze accepted last."""

from django.db import models

from cohorts.models import MAX_IDENTIFIER_LENGTH, IdType
from syncs.models.syncs import Sync, SyncRun


class SyncedTraits(models.Model):
    """What a trait sync has written to one member's profile: attribute -> the value sent (as
    sent: a time already in ISO-8601). A run sends a member only the chosen attributes whose
    value differs from this, and rewrites the row in its checkpoint once the partner accepted.

    One row per member with a JSON object rather than one per attribute: a run reads and
    writes a member at once, and a cohort of a million members with five traits stays a
    million rows, each updated in place.
    """

    # The unique identity index below leads with the sync.
    sync = models.ForeignKey(
        Sync, on_delete=models.CASCADE, related_name="trait_ledger", db_index=False
    )
    id_type = models.CharField(max_length=16, choices=IdType.choices)
    alias_label = models.CharField(max_length=MAX_IDENTIFIER_LENGTH, blank=True, default="")
    value = models.CharField(max_length=MAX_IDENTIFIER_LENGTH)
    # The destination identifier the values were sent to.
    dest_type = models.CharField(max_length=16)
    dest_value = models.CharField(max_length=MAX_IDENTIFIER_LENGTH)
    values = models.JSONField(default=dict)
    run = models.ForeignKey(
        SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Value second: a run reads a page of members' rows by their values.
            models.UniqueConstraint(
                fields=["sync", "value", "id_type", "alias_label"],
                name="one_trait_row_per_identity",
            )
        ]

    def __str__(self) -> str:
        return f"{self.sync_id}: {self.id_type}:{self.value} ({len(self.values)} attributes)"
