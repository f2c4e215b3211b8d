"""What happened during a run, and to whom: the run's timeline, a few of its requests with the
partner's answers, and the members it removed.

The ledger (SyncedMember) says who is in the destination now; these say how it got there, for
the run page's timeline and the member lookup.
"""

from django.db import models
from django.utils import timezone

from cohorts.models import MAX_IDENTIFIER_LENGTH, IdType
from syncs.models.syncs import Sync, SyncRun


class SyncRunEvent(models.Model):
    """One step of a run: queued, claimed, planned, a checkpointed batch, a retry or a throttled
    wait, an interruption and its resume, a hold and its decision, the end."""

    class Kind(models.TextChoices):
        QUEUED = "queued", "Queued"
        CLAIMED = "claimed", "Claimed by a worker"
        PLANNED = "planned", "Planned"
        BATCH = "batch", "Batch accepted"
        RETRY = "retry", "Retry"
        THROTTLED = "throttled", "Throttled"
        INTERRUPTED = "interrupted", "Interrupted"
        RESUMED = "resumed", "Resumed"
        HELD = "held", "Held for approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        CANCEL_REQUESTED = "cancel_requested", "Cancel requested"
        FINISHED = "finished", "Finished"

    # The (run, id) index below leads with the run.
    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.CharField(max_length=500, blank=True)
    # Counts for a batch (added, removed, failed, skipped, requests, ms), a wait's seconds...
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["run", "id"]),
            # The retention job (cohortsync/retention.py) finds old events by time.
            models.Index(fields=["at"], name="syncrunevent_at"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.kind}"


class SyncRunExchange(models.Model):
    """One request a run sent to its partner and the answer, as its page shows them: kept for
    the run's first batches and for every attempt the partner refused or left unanswered, up
    to a cap per run (syncs/engine/exchanges.py). Redacted before it is written
    (connections/partners/redaction.py): no credential, no header, identifiers only for the
    first few members of a batch."""

    # The (run, id) index below leads with the run.
    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, related_name="exchanges", db_index=False
    )
    at = models.DateTimeField(default=timezone.now)
    # Batches are numbered in the order the run sent them, from 1 again in each resumed part of
    # the run (`interruptions`: how many times it had been interrupted when this was sent).
    batch = models.PositiveIntegerField()
    attempt = models.PositiveSmallIntegerField()
    interruptions = models.PositiveSmallIntegerField(default=0)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=300)
    # None: no answer came back (`note` says why).
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    milliseconds = models.PositiveIntegerField(default=0)
    request = models.TextField(blank=True)
    answer = models.TextField(blank=True)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["run", "id"]),
            # The retention job (cohortsync/retention.py) finds old exchanges by time.
            models.Index(fields=["at"], name="syncrunexchange_at"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id}: batch {self.batch} attempt {self.attempt} -> {self.status}"

    @property
    def failed(self) -> bool:
        """No answer, or the partner refused the request (4xx, 5xx, 429)."""
        return self.status is None or self.status >= 400


class SyncRemoval(models.Model):
    """A member a run removed from the destination (its ledger row is gone by then)."""

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="removals")
    run = models.ForeignKey(SyncRun, null=True, on_delete=models.SET_NULL, related_name="+")
    id_type = models.CharField(max_length=16, choices=IdType.choices)
    alias_label = models.CharField(max_length=MAX_IDENTIFIER_LENGTH, blank=True, default="")
    value = models.CharField(max_length=MAX_IDENTIFIER_LENGTH)
    removed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["value"], name="syncremoval_value")]

    def __str__(self) -> str:
        return f"{self.sync_id}: {self.id_type}:{self.value} removed"
