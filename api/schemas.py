"""What the API reads and answers, as pydantic schemas (they are also the OpenAPI document).

Inputs forbid unknown fields and refuse values no database column can hold (NUL characters,
unpaired surrogates, NaN and infinities, absurd nesting) before any service sees them: those
would otherwise fail inside the database with a 500. What the values mean is the services' job.
"""

import math
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from ninja import Schema
from pydantic import AliasChoices, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

from connections.partners import PARTNERS

# The largest id a BIGINT primary key holds; a larger one can only be "not found".
MAX_ID = 2**63 - 1
# In a path or a query, where every value arrives as text.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
MAX_NESTING = 16


def _whole_number(value: Any) -> Any:
    """A JSON number without a fraction, as sent: pydantic would otherwise take true as 1 and
    "50" or 50.0 as 50."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true or false")
    if not isinstance(value, int):
        raise ValueError("must be a whole number")
    return value


# In a JSON body: only a JSON integer is one.
WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
BodyId = Annotated[int, BeforeValidator(_whole_number), Field(ge=1, le=MAX_ID)]


def _check_storable(value: object, depth: int = 0) -> None:
    if depth > MAX_NESTING:
        raise ValueError(f"values are nested more than {MAX_NESTING} levels deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text cannot contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (no unpaired surrogates)") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, depth + 1)
            _check_storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item, depth + 1)


class Input(Schema):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        _check_storable(data)
        return data


# Reading


class ConnectionOut(Schema):
    id: int
    kind: str
    name: str
    config: dict[str, Any]
    # The credential itself is never readable: only its last characters, masked.
    secret: str = Field(validation_alias="masked_secret")
    # "destination" (a sync may send to it) or "source" (cohorts come from it; no sync).
    direction: str = Field(validation_alias="direction_label")
    state: str
    last_error: str
    last_checked_at: datetime | None
    created_at: datetime


class ConnectionCheckOut(Schema):
    """One "Test connection": queued, running, then its outcome (ok, refused, unreachable,
    failed) with the partner's answer in `message`."""

    id: int
    connection_id: int
    status: str
    message: str
    created_at: datetime
    finished_at: datetime | None


class ConnectionCheckQueuedOut(Schema):
    check: ConnectionCheckOut
    # Where to read the check until its status is no longer queued or running.
    poll: str


class CleanupRunOut(Schema):
    sync_id: int
    run_id: int


class ConnectionRemovalOut(Schema):
    """A connection whose syncs first remove what they sent: deleted once their cleanup runs
    finish (GET it until it answers 404)."""

    deleted: bool
    message: str
    cleanup_runs: list[CleanupRunOut]


class CohortOut(Schema):
    id: int
    name: str
    source: str
    partner: str
    partner_cohort_id: str
    member_count: int
    created_at: datetime
    updated_at: datetime


class Ref(Schema):
    id: int
    name: str


class SyncOut(Schema):
    id: int
    name: str
    cohort: Ref
    connection: Ref
    status: str
    # "membership", or "traits": chosen member properties written as custom attributes.
    kind: str
    traits: list[dict[str, str]]
    traits_send_nulls: bool
    identifier_mapping: list[str]
    cadence: dict[str, Any]
    leaving_members: str
    mass_removal_threshold_pct: int
    options: dict[str, Any]
    # Whether each run that sends adds has a random sample of them read back from the partner.
    verify: bool
    verify_sample_size: int
    next_run_at: datetime | None
    last_run_status: str
    last_run_at: datetime | None
    last_run_summary: str
    created_at: datetime


class RunOut(Schema):
    id: int
    sync_id: int
    trigger: str
    # A retry run (trigger "retry"): the run whose failed members it sends again.
    retry_of: int | None = Field(validation_alias=AliasChoices("retry_of_id", "retry_of"))
    status: str
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    planned_adds: int
    planned_removes: int
    # A trait sync's run: `added` counts members updated; attributes_written the custom
    # attributes they were sent (Braze data points).
    updates_traits: bool
    attributes_written: int
    added: int
    # False: the partner may have ignored some adds it accepted (Braze, update existing only:
    # members without a profile), so `added` counts adds sent, not members in the destination.
    adds_applied: bool
    removed: int
    failed: int
    skipped: int
    requests: int
    retries: int
    throttled_seconds: float
    interruptions: int
    error_summary: str
    # The read-back of a random sample of this run's adds: "" (the sync does not verify, or the
    # run sent none), "pending", "done" (verify_verified of verify_sampled carry the
    # membership) or "failed" (verify_error says why; the counts are then null, never 0).
    verification: str
    verify_sampled: int | None
    verify_verified: int | None
    verified_at: datetime | None
    verify_error: str
    # Refused or unanswered requests past the run's cap on those it keeps (`.../exchanges`).
    exchanges_left_out: int


class ErrorGroupOut(Schema):
    reason: str
    count: int
    partner_statuses: list[int]
    sample_members: list[str] = Field(validation_alias="samples")


class RunDetailOut(RunOut):
    error_groups: list[ErrorGroupOut]


class RunErrorOut(Schema):
    id: int
    operation: str
    member: str
    reason: str
    partner_status: int | None
    created_at: datetime


class RunExchangeOut(Schema):
    """A request the run sent and the partner's answer, redacted: no credential, and only the
    first 3 members of a request in full (the others counted, masked where the answer quotes
    them). `request` and `answer` are pretty-printed JSON text (an answer that was not JSON as
    it came), cut at 4,000 characters; `status` is null when no answer came (`note` says why)."""

    id: int
    at: datetime
    batch: int
    attempt: int
    # Batches are numbered from 1 again in each part of a run resumed after an interruption.
    interruptions: int
    method: str
    path: str
    status: int | None
    milliseconds: int
    request: str
    answer: str
    note: str


class ImportKeyOut(Schema):
    id: int
    name: str
    partner: str
    prefix: str
    status: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @staticmethod
    def resolve_status(key: Any) -> str:
        return str(key.status())


class ImportKeyCreatedOut(Schema):
    # The only time the raw key is ever shown: store it now.
    key: str
    import_key: ImportKeyOut


class Message(Schema):
    message: str
    errors: dict[str, list[str]] = Field(default_factory=dict)


Item = TypeVar("Item")


class Page(Schema, Generic[Item]):
    count: int
    limit: int
    offset: int
    items: list[Item]


# Writing


class SyncCreateIn(Input):
    name: str
    cohort_id: BodyId
    connection_id: BodyId
    identifier_mapping: list[str] = Field(examples=[["external_id"]])
    cadence: dict[str, Any] = Field(examples=[{"kind": "daily", "time_of_day": "09:00"}])
    leaving_members: str = "remove"
    mass_removal_threshold_pct: WholeNumber = 50
    options: dict[str, Any] | None = None
    verify: StrictBool = False
    verify_sample_size: WholeNumber = Field(100, description="Members read back, 1 to 1,000.")
    kind: str = Field("membership", description='"membership" or "traits".')
    traits: list[dict[str, Any]] | None = Field(
        None,
        description="A trait sync's properties, each written to the attribute of the same name "
        "unless renamed.",
        examples=[[{"property": "plan"}, {"property": "score", "attribute": "lead_score"}]],
    )
    traits_send_nulls: StrictBool = False


class SyncUpdateIn(Input):
    """Only the fields sent change; the cohort and the destination of a sync never do."""

    name: str | None = None
    identifier_mapping: list[str] | None = None
    cadence: dict[str, Any] | None = None
    leaving_members: str | None = None
    mass_removal_threshold_pct: WholeNumber | None = None
    options: dict[str, Any] | None = None
    verify: StrictBool | None = None
    verify_sample_size: WholeNumber | None = None
    traits: list[dict[str, Any]] | None = None
    traits_send_nulls: StrictBool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> "SyncUpdateIn":
        # null would otherwise reach the service as a value; only options may be emptied so.
        nulls = sorted(
            name
            for name in self.model_fields_set
            if name != "options" and getattr(self, name) is None
        )
        if nulls:
            raise ValueError(f"these fields cannot be null: {', '.join(nulls)}")
        return self


class ImportKeyCreateIn(Input):
    """Checked by the dashboard's own form, so both refuse the same input the same way."""

    partner: str
    name: str
    expires_in_days: WholeNumber | None = Field(
        None, description="Leave out for a key that never expires."
    )


def _partner_settings() -> str:
    """Each partner's settings and credential parts, for the API docs, from the registry."""
    return "; ".join(
        f"`{kind}`: settings {', '.join(f'`{name}`' for name in partner.config_form().fields)}"
        f", credentials {', '.join(f'`{name}`' for name in partner.secret_fields())}"
        for kind, partner in PARTNERS.items()
    )


PARTNER_SETTINGS = _partner_settings()


class ConnectionCreateIn(Input):
    """Checked by the dashboard's own connection form (the partner's settings, and where a
    custom endpoint resolves under the egress policy), so both refuse the same input."""

    kind: str = Field(description=f"One of: {', '.join(PARTNERS)}.", examples=["braze"])
    name: str
    config: dict[str, Any] = Field(
        default_factory=dict,
        description=f"The partner's settings; those left out take their defaults. "
        f"{PARTNER_SETTINGS}.",
        examples=[{"instance": "US-01", "default_identifier": "external_id"}],
    )
    credentials: dict[str, str] = Field(
        description="Every part of the partner's credential (see `config`). Write-only: never "
        "answered, only its last characters, masked, as `secret`.",
        examples=[{"secret": "your-braze-rest-api-key"}],
    )


class ConnectionUpdateIn(Input):
    """Only what is sent changes: settings left out keep their value, and the credential is
    only replaced when `credentials` is sent (all its parts together)."""

    name: str | None = None
    config: dict[str, Any] | None = Field(None, description=PARTNER_SETTINGS)
    credentials: dict[str, str] | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> "ConnectionUpdateIn":
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"these fields cannot be null: {', '.join(nulls)}")
        return self
