"""Syncs, their runs and the ledger of what each sync has put into its destination."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from cohorts.models import MAX_IDENTIFIER_LENGTH, Cohort, IdType


class Sync(models.Model):
    """A cohort kept in sync with a destination connection."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"

    class Leaving(models.TextChoices):
        REMOVE = "remove", "Remove them from the destination"
        KEEP = "keep", "Keep them in the destination"

    class Kind(models.TextChoices):
        # Writes who is in the cohort (added and removed members).
        MEMBERSHIP = "membership", "Membership"
        # Writes chosen member properties as custom attributes (syncs/engine/traits.py).
        TRAITS = "traits", "Member traits"

    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MEMBERSHIP)
    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, related_name="syncs")
    connection = models.ForeignKey(
        "connections.Connection", on_delete=models.PROTECT, related_name="syncs"
    )
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.ACTIVE)
    # Destination identifier types in order of preference, e.g. ["external_id", "braze_id"].
    identifier_mapping = models.JSONField(default=list)
    # syncs.cadence.Cadence.to_dict(); validated when read.
    cadence = models.JSONField(default=dict)
    leaving_members = models.CharField(
        max_length=16, choices=Leaving.choices, default=Leaving.REMOVE
    )
    # A run that would remove more than this share of the ledger waits for approval.
    mass_removal_threshold_pct = models.PositiveSmallIntegerField(default=50)
    # Per-partner options, e.g. {"membership_mode": "both"} for Braze.
    options = models.JSONField(default=dict, blank=True)
    # A trait sync's properties and the attribute each is written to, in order:
    # [{"property": "plan", "attribute": "plan"}, ...] (syncs/engine/traits.py validates them).
    traits = models.JSONField(default=list, blank=True)
    # A trait sync: a chosen property gone from a member at the source is sent as null (the
    # attribute removed from the profile); otherwise the profile keeps the last value sent.
    traits_send_nulls = models.BooleanField(default=False)
    # After each run that sent adds, read a random sample of them back from the partner (only
    # where the partner can, Partner.can_verify) and record how many carry the membership.
    verify = models.BooleanField(default=False)
    verify_sample_size = models.PositiveSmallIntegerField(default=100)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # A real-time change arrived while a run was going: run once more when it ends.
    follow_up_requested = models.BooleanField(default=False)
    # The latest run's outcome, copied here so list pages cost one query.
    last_run_status = models.CharField(max_length=32, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_summary = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]
        permissions = [("manage_syncs", "Can create, run, pause and delete syncs")]
        indexes = [
            # The home page and the sync list read a page of syncs in this order.
            models.Index(fields=["name", "id"], name="sync_by_name"),
            # The home page's attention list: syncs whose last run failed, latest first.
            models.Index(
                fields=["-last_run_at", "-id"],
                condition=models.Q(last_run_status__in=["failed", "partially_failed"]),
                name="sync_last_run_failed",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_traits(self) -> bool:
        return self.kind == self.Kind.TRAITS


class SyncRun(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Run now"
        REALTIME = "realtime", "Real-time change"
        API = "api", "API"
        RESUME = "resume", "Resume"
        RESYNC = "resync", "Full resync"
        # Removes everything the sync put in the destination, before its connection is deleted.
        CLEANUP = "cleanup", "Cleanup before deleting the connection"
        # Sends again only the members that failed in an earlier run (retry_of).
        RETRY = "retry", "Retry of failed members"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIALLY_FAILED = "partially_failed", "Partially failed"
        FAILED = "failed", "Failed"
        HELD = "held", "Held for approval"
        SKIPPED = "skipped", "Skipped"
        CANCELED = "canceled", "Canceled"

    class Verification(models.TextChoices):
        PENDING = "pending", "Verifying"
        DONE = "done", "Verified"
        FAILED = "failed", "Verification failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    planned_adds = models.IntegerField(default=0)
    planned_removes = models.IntegerField(default=0)
    added = models.IntegerField(default=0)
    removed = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    # Members with no identifier the mapping can use.
    skipped = models.IntegerField(default=0)
    # A run of a trait sync (copied from its sync when queued): its adds are member updates.
    updates_traits = models.BooleanField(default=False)
    # A trait run: the custom attributes its accepted updates wrote (each a data point).
    attributes_written = models.IntegerField(default=0)
    requests = models.IntegerField(default=0)
    retries = models.IntegerField(default=0)
    throttled_seconds = models.FloatField(default=0)
    interruptions = models.PositiveSmallIntegerField(default=0)
    # False when the partner may ignore an add it accepts (Braze, update existing only: unknown
    # profiles are skipped, yet answered 201): this run's adds are then "sent", not "added".
    adds_applied = models.BooleanField(default=True)
    # What the partner bills, in its data points, for each member the run adds or removes
    # (Braze: one per custom attribute written); null for a partner that bills none.
    data_points_per_member = models.PositiveSmallIntegerField(null=True, blank=True)
    # How long the partner took to answer this run's requests, on average (milliseconds, from
    # post to answer): the preview's time estimate for the connection's next runs.
    partner_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # Requests and answers worth showing that the run's page does not, past its cap on those
    # kept (SyncRunExchange): the page says how many were left out.
    exchanges_left_out = models.PositiveIntegerField(default=0)
    # The plan's bounds (highest member / ledger id it covers) and the checkpointed progress:
    # a resumed run goes on after the cursors, within the same bounds, so nothing is counted twice.
    add_until = models.BigIntegerField(default=0)
    remove_until = models.BigIntegerField(default=0)
    # The run adds every member of its cohort up to add_until (a first sync, or a full
    # resync: nothing to subtract), so its plan stores no row for them: its pages read the
    # cohort itself.
    adds_whole_cohort = models.BooleanField(default=False)
    add_cursor = models.BigIntegerField(default=0)
    remove_cursor = models.BigIntegerField(default=0)
    error_summary = models.TextField(blank=True)
    # The read-back of a sample of this run's adds (syncs/verification.py): "" when the sync
    # does not verify or the run sent no adds.
    verification = models.CharField(
        max_length=16, choices=Verification.choices, blank=True, default=""
    )
    verify_sampled = models.PositiveIntegerField(null=True, blank=True)
    verify_verified = models.PositiveIntegerField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    # Why verification itself failed (a partner error, redacted): never shown as 0 verified.
    verify_error = models.CharField(max_length=255, blank=True)

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A retry run's plan is its diff restricted to the members that failed in this run.
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retried_by"
    )

    class Meta:
        ordering = ["-queued_at", "-id"]
        constraints = [
            # At most one queued or running run per sync, enforced by the database.
            models.UniqueConstraint(
                fields=["sync"],
                condition=models.Q(status__in=["queued", "running"]),
                name="one_active_run_per_sync",
            )
        ]
        indexes = [
            models.Index(fields=["sync", "-queued_at"]),
            # The dashboard: history filtered by status, held runs, and the daily totals (the
            # counts ride in the index so the month's chart reads no table rows).
            models.Index(fields=["sync", "status", "-queued_at"], name="syncrun_sync_status"),
            models.Index(
                fields=["-queued_at"], condition=models.Q(status="held"), name="syncrun_held"
            ),
            models.Index(fields=["finished_at", "added", "removed"], name="syncrun_finished"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.sync_id}: {self.status}"

    @property
    def added_word(self) -> str:
        """What its adds are called on pages: "added", or "sent" when the partner may have
        ignored some (see adds_applied); "updated" for a trait run, whose members are not added
        to anything."""
        if self.updates_traits:
            return "updated"
        return "added" if self.adds_applied else "sent"

    @property
    def data_points(self) -> int | None:
        """The data points what the partner accepted costs: its adds and removals, each at the
        run's rate. None for a partner that bills none."""
        if self.data_points_per_member is None:
            return None
        # A trait run bills per attribute, not per member: its rate per member is 0.
        return (self.added + self.removed) * self.data_points_per_member + self.attributes_written

    @property
    def verified_pct(self) -> float | None:
        """The share of the sample that carried the membership, once verified."""
        if self.verification != self.Verification.DONE or not self.verify_sampled:
            return None
        return 100.0 * (self.verify_verified or 0) / self.verify_sampled

    @property
    def processed(self) -> int:
        return self.added + self.removed + self.failed + self.skipped

    @property
    def planned(self) -> int:
        return self.planned_adds + self.planned_removes


class SyncRunError(models.Model):
    """A member a run could not add or remove (or skipped), with the reason."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="errors")
    operation = models.CharField(max_length=8)  # "add" or "remove"
    member = models.CharField(max_length=600)  # the cohort identity, as text
    reason = models.CharField(max_length=255)
    partner_status = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        # The member lookup finds a member's failures and skips by its identity text.
        indexes = [models.Index(fields=["member"], name="syncrunerror_member")]

    def __str__(self) -> str:
        return f"{self.member}: {self.reason}"


class SyncedMember(models.Model):
    """The ledger: a member this sync put into the destination, and how it was addressed there.

    Written in the same transaction as the run's counters, after the partner accepted the batch.
    """

    # Django keeps the foreign keys (it deletes a sync's ledger with it, clears a deleted run),
    # not the database: its checks cost a checkpoint more than the row itself (36 µs a row
    # with them, 25 without, measured on PostgreSQL 15). The unique identity index below leads
    # with the sync, and serves every query by sync (the diff, counts, a cleanup's plan).
    sync = models.ForeignKey(
        Sync, on_delete=models.CASCADE, related_name="ledger", db_index=False, db_constraint=False
    )
    id_type = models.CharField(max_length=16, choices=IdType.choices)
    alias_label = models.CharField(max_length=MAX_IDENTIFIER_LENGTH, blank=True, default="")
    value = models.CharField(max_length=MAX_IDENTIFIER_LENGTH)
    # The destination identifier that was sent, so a removal addresses the same profile.
    dest_type = models.CharField(max_length=16)
    dest_value = models.CharField(max_length=MAX_IDENTIFIER_LENGTH)
    dest_label = models.CharField(max_length=MAX_IDENTIFIER_LENGTH, blank=True, default="")
    # Indexed: a verification samples one run's rows, and deleting old runs clears theirs.
    run = models.ForeignKey(
        SyncRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sync", "id_type", "alias_label", "value"],
                name="one_ledger_row_per_identity",
            )
        ]
        indexes = [
            # The member lookup: which syncs have this member in their destination.
            models.Index(fields=["value"], name="syncedmember_value"),
        ]

    def __str__(self) -> str:
        return f"{self.sync_id}: {self.id_type}:{self.value} as {self.dest_type}"
