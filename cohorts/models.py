"""Cohorts and their members, and every change that came in (partner pushes, CSV uploads)."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from connections.models import ImportKey


class IdType(models.TextChoices):
    """The kinds of primary identifier a member can have."""

    EXTERNAL_ID = "external_id", "External ID"
    DEVICE_ID = "device_id", "Device ID"
    USER_ALIAS = "user_alias", "User alias"


# Optional identifiers a member may carry, used by identifier mappings in syncs.
EXTRA_IDENTIFIERS = ("braze_id", "idfa", "idfv", "gaid", "oaid", "amplitude_id")
# Every identifier a member can have, and how pages name it whatever the partner (a partner
# that calls one something else says so: Partner.identifier_names).
MEMBER_IDENTIFIERS = (*IdType.values, *EXTRA_IDENTIFIERS)
IDENTIFIER_LABELS = {
    **dict(IdType.choices),
    "braze_id": "Braze ID",
    "idfa": "IDFA (iOS advertising ID)",
    "idfv": "IDFV (iOS vendor ID)",
    "gaid": "GAID (Android advertising ID)",
    "oaid": "OAID (Android, Huawei and others)",
    "amplitude_id": "Amplitude ID",
}
MAX_IDENTIFIER_LENGTH = 255


class Cohort(models.Model):
    class Source(models.TextChoices):
        PARTNER = "partner", "Partner push"
        CSV = "csv", "CSV upload"
        MANUAL = "manual", "Manual"

    name = models.CharField(max_length=255)
    source = models.CharField(max_length=16, choices=Source.choices)
    # For partner pushes: which partner (ImportKey.Partner) and its own cohort id.
    partner = models.CharField(max_length=32, blank=True, choices=ImportKey.Partner.choices)
    partner_cohort_id = models.CharField(max_length=255, blank=True)
    partner_created_at = models.DateTimeField(null=True, blank=True)
    member_count = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # When membership (or the name) last changed.
    updated_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]
        permissions = [("manage_cohorts", "Can create, change and delete cohorts")]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "partner_cohort_id"],
                condition=models.Q(source="partner"),
                name="one_cohort_per_partner_cohort_id",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def refuse_manual_changes(self) -> None:
        """A partner-fed cohort changes only with its partner's pushes, or they would diverge."""
        if self.source == self.Source.PARTNER:
            raise ValidationError(
                f"{self.name} is fed by {self.get_partner_display()}: its members change only "
                "with that partner's pushes. Change the cohort there."
            )


class IdentityFields(models.Model):
    """A primary identifier plus optional extra identifiers: a member, or a staged CSV row."""

    id_type = models.CharField(max_length=16, choices=IdType.choices)
    # The alias label for user aliases; empty for the other types (part of the identity).
    alias_label = models.CharField(max_length=MAX_IDENTIFIER_LENGTH, blank=True, default="")
    value = models.CharField(max_length=MAX_IDENTIFIER_LENGTH)
    braze_id = models.CharField(max_length=MAX_IDENTIFIER_LENGTH, null=True, blank=True)
    idfa = models.CharField(max_length=64, null=True, blank=True)
    idfv = models.CharField(max_length=64, null=True, blank=True)
    gaid = models.CharField(max_length=64, null=True, blank=True)
    oaid = models.CharField(max_length=128, null=True, blank=True)
    amplitude_id = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        abstract = True


class CohortMember(IdentityFields):
    """One identity in a cohort: a primary identifier plus optional extra identifiers."""

    # No index of its own: the unique identity and (cohort, id) indexes both start with it.
    # Django keeps the foreign key (it deletes a cohort's members with it), not the database:
    # its check, row by row at commit, was about half of applying a 1M-member download (12 of
    # 25 s, bench/README.md). Nothing deletes cohorts in raw SQL.
    cohort = models.ForeignKey(
        Cohort,
        on_delete=models.CASCADE,
        related_name="members",
        db_index=False,
        db_constraint=False,
    )
    added_at = models.DateTimeField(default=timezone.now)
    # The member's properties as its source last gave them (an Amplitude download's property
    # columns, a webhook's user_properties, a CSV's extra columns): name -> JSON value. None
    # when the source gave none; a source that gives them replaces them whole, so a property
    # gone at the source is gone here (cohorts/membership.py). Trait syncs send them.
    properties = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cohort", "id_type", "alias_label", "value"], name="one_member_per_identity"
            )
        ]
        # Keyset paging by id within a cohort, and member search by any identifier: the pattern
        # ops serve prefix searches on PostgreSQL whatever the collation (other databases ignore
        # them; cohorts.member_search); the extras are indexed only where present, which keeps
        # bulk inserts cheap.
        indexes = [
            models.Index(fields=["cohort", "id"]),
            models.Index(
                fields=["value"], name="member_value_idx", opclasses=["varchar_pattern_ops"]
            ),
            *(
                models.Index(
                    fields=[name],
                    name=f"member_{name}_idx",
                    condition=models.Q(**{f"{name}__isnull": False}),
                    opclasses=["varchar_pattern_ops"],
                )
                for name in EXTRA_IDENTIFIERS
            ),
        ]

    def __str__(self) -> str:
        if self.id_type == IdType.USER_ALIAS:
            return f"{self.alias_label}:{self.value}"
        return f"{self.id_type}:{self.value}"


class CohortSizeSample(models.Model):
    """The cohort's size at a moment, recorded when it changes (at most one a minute)."""

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="size_samples")
    at = models.DateTimeField()
    member_count = models.BigIntegerField()

    class Meta:
        ordering = ["at"]
        constraints = [
            models.UniqueConstraint(fields=["cohort", "at"], name="one_size_sample_per_minute")
        ]

    def __str__(self) -> str:
        return f"{self.cohort_id} @ {self.at}: {self.member_count}"


class ImportRequest(models.Model):
    """One inbound push from a partner, whatever its outcome."""

    class Status(models.TextChoices):
        APPLIED = "applied", "Applied"
        REJECTED = "rejected", "Rejected"
        # An Amplitude webhook batch: accepted and stored, applied by a job just after.
        QUEUED = "queued", "Queued"
        # An Amplitude webhook batch whose message_id came before: nothing done again.
        DUPLICATE = "duplicate", "Already received"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    key = models.ForeignKey(
        ImportKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="requests"
    )
    partner = models.CharField(max_length=32)
    endpoint = models.CharField(max_length=32)  # "cohorts", "cohorts/users" or "webhook"
    cohort = models.ForeignKey(
        Cohort, null=True, blank=True, on_delete=models.SET_NULL, related_name="import_requests"
    )
    partner_cohort_id = models.CharField(max_length=255, blank=True)
    added = models.IntegerField(default=0)
    removed = models.IntegerField(default=0)
    # Identifiers that changed nothing: already present on add, absent on remove.
    ignored = models.IntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices)
    http_status = models.PositiveSmallIntegerField()
    error = models.TextField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["cohort", "-created_at"]),
            models.Index(fields=["key", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.partner} {self.endpoint} {self.http_status}"


class RefusedImportCount(models.Model):
    """Inbound requests refused before they showed a genuine data-import key (no key, a made-up
    one, a body too large or not JSON), counted per partner, reason and minute. Anyone can send
    those, so they never get an ImportRequest row each: a flood of them costs one row a minute."""

    class Reason(models.TextChoices):
        NO_KEY = "no_key", "No key"
        UNKNOWN_KEY = "unknown_key", "Unknown key"
        NOT_JSON = "not_json", "Body not a JSON object"
        TOO_LARGE = "too_large", "Body too large"
        OTHER = "other", "Other"

    partner = models.CharField(max_length=32)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    # The start of the minute, UTC.
    minute = models.DateTimeField(db_index=True)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-minute", "partner", "reason"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "reason", "minute"], name="one_refused_count_per_minute"
            )
        ]

    def __str__(self) -> str:
        return f"{self.partner} {self.reason} at {self.minute:%Y-%m-%d %H:%M}: {self.count}"


class CsvUpload(models.Model):
    """A CSV file applied to a cohort by an RQ job, with its progress and outcome."""

    class Mode(models.TextChoices):
        REPLACE = "replace", "Replace the members"
        ADD = "add", "Add these members"
        REMOVE = "remove", "Remove these members"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="uploads")
    mode = models.CharField(max_length=16, choices=Mode.choices)
    file_name = models.CharField(max_length=255)
    # Path in default storage; removed once the upload is applied.
    stored_path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    bytes_done = models.BigIntegerField(default=0)
    rows_done = models.BigIntegerField(default=0)
    rows_bad = models.BigIntegerField(default=0)
    added = models.BigIntegerField(default=0)
    removed = models.BigIntegerField(default=0)
    ignored = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    # Path in default storage of the CSV of bad rows (line, reason), if there were any.
    bad_rows_path = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.file_name} → {self.cohort_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def percent(self) -> int:
        if self.is_finished:
            return 100
        return int(100 * self.bytes_done / self.size_bytes) if self.size_bytes else 0


class CsvUploadRow(IdentityFields):
    """A good row of a CSV upload, staged by the import job until it applies them all at once.

    Rows are inserted in file order, so a higher id is a later line; when an identity repeats,
    the earlier rows are deleted before applying (last row wins). The rows are deleted in the
    transaction that applies them.
    """

    # The composite index below leads with the upload, so the column needs no index of its own.
    upload = models.ForeignKey(
        CsvUpload, on_delete=models.CASCADE, related_name="staged_rows", db_index=False
    )
    # The row's member properties (a file with property columns); None when it has none.
    properties = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            # Keyset paging through an upload's rows by id.
            models.Index(fields=["upload", "id"]),
            # Finding repeats, and the members a replace keeps.
            models.Index(fields=["upload", "id_type", "alias_label", "value"]),
        ]

    def __str__(self) -> str:
        return f"{self.upload_id}: {self.id_type}:{self.value}"


class AmplitudeBatch(models.Model):
    """One Amplitude Cohort Webhooks batch: stored when it arrives, applied by a job after.

    `message_id` is unique: Amplitude retries a batch it got no timely answer for, so the same
    batch may come twice, and the second is only logged. The user ids are dropped once applied.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        APPLIED = "applied", "Applied"
        FAILED = "failed", "Failed"

    message_id = models.CharField(max_length=255, unique=True)
    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="amplitude_batches")
    cohort_name = models.CharField(max_length=255)
    in_cohort = models.BooleanField()
    computed_at = models.DateTimeField()
    user_ids = models.JSONField(default=list)
    # user id -> the user_properties sent with it (members' properties); dropped once applied.
    user_properties = models.JSONField(default=dict)
    # Users as sent, repeats included: the import log's counts add up to it.
    users_sent = models.IntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    import_request = models.OneToOneField(
        ImportRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.message_id} ({self.status})"


class AmplitudeMemberState(models.Model):
    """Per cohort and Amplitude user: the computed time of the latest batch applied for them,
    and whether it put them in or out. Amplitude may deliver batches out of order; a batch
    computed earlier than this changes nothing for the user (kept after they leave, too)."""

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="+", db_index=False)
    user_id = models.CharField(max_length=MAX_IDENTIFIER_LENGTH)
    computed_at = models.DateTimeField()
    in_cohort = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cohort", "user_id"], name="one_amplitude_state_per_user"
            )
        ]

    def __str__(self) -> str:
        return f"{self.cohort_id}:{self.user_id} {'in' if self.in_cohort else 'out'}"


class AmplitudePull(models.Model):
    """A cohort downloaded from an Amplitude source (Behavioral Cohorts API) on its cadence,
    its membership replaced by each download (docs/partners/amplitude.md §11).

    The latest attempt's outcome is copied here so the source page costs one query. A pending
    export's request id is kept between attempts: polling it again costs no quota, requesting a
    new one does (docs/partners/amplitude.md §5).
    """

    class Cadence(models.TextChoices):
        ONCE = "once", "Once"
        HOURLY = "hourly", "Hourly"
        DAILY = "daily", "Daily"

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for its first download"
        RUNNING = "running", "Downloading"
        SUCCEEDED = "succeeded", "Up to date"
        FAILED = "failed", "Failed"

    cohort = models.OneToOneField(Cohort, on_delete=models.CASCADE, related_name="amplitude_pull")
    connection = models.ForeignKey(
        "connections.Connection", on_delete=models.CASCADE, related_name="amplitude_pulls"
    )
    amplitude_cohort_id = models.CharField(max_length=255)
    cadence = models.CharField(max_length=16, choices=Cadence.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    # When the dispatcher next queues it; None when nothing is scheduled (a "once" done).
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    request_id = models.CharField(max_length=255, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    # Failed attempts in a row: the backoff before the next one grows with it.
    failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    # The last good file: its rows, and those skipped for having no usable user_id.
    last_rows = models.BigIntegerField(default=0)
    last_skipped = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["cohort__name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "amplitude_cohort_id"], name="one_pull_per_amplitude_cohort"
            )
        ]

    def __str__(self) -> str:
        return f"{self.amplitude_cohort_id} ({self.cadence})"


class AmplitudeDownloadRequest(models.Model):
    """One export requested from Amplitude (step 1, the call its monthly quota counts): the
    source page's "downloads used this month" is counted from these rows."""

    connection = models.ForeignKey(
        "connections.Connection", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    pull = models.ForeignKey(
        AmplitudePull, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_id = models.CharField(max_length=255)
    requested_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["connection", "requested_at"])]

    def __str__(self) -> str:
        return f"{self.connection_id}: {self.request_id}"


class AmplitudeCohortListing(models.Model):
    """The source's cohort list as a worker last read it (pages never call a partner), for
    picking cohorts to pull: each entry's id, name and size."""

    connection = models.OneToOneField(
        "connections.Connection", on_delete=models.CASCADE, related_name="amplitude_listing"
    )
    cohorts = models.JSONField(default=list)
    requested_at = models.DateTimeField(default=timezone.now)
    listed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.connection_id}: {len(self.cohorts)} cohorts"
