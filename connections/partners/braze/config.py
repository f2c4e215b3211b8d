"""A Braze connection's settings: its instance, how membership is written, its limits."""

from dataclasses import asdict, dataclass
from typing import Any

from django import forms

from connections.partners.base import ConfigError, PartnerConfig
from connections.partners.braze.array_cap import (
    ARRAY_MODES,
    DEFAULT_ARRAY_CAP,
    MAX_ARRAY_CAP,
    WHERE_TO_READ_THE_CAP,
)
from connections.partners.http import normalise_endpoint

# REST hosts per instance, from Braze's endpoint table (docs/partners/braze.md §1).
INSTANCES: dict[str, str] = {
    **{f"US-0{n}": f"https://rest.iad-0{n}.braze.com" for n in range(1, 9)},
    "US-10": "https://rest.us-10.braze.com",
    "EU-01": "https://rest.fra-01.braze.eu",
    "EU-02": "https://rest.fra-02.braze.eu",
    "AU-01": "https://rest.au-01.braze.com",
}
CUSTOM = "custom"
MEMBERSHIP_MODES = {
    "array": "An array attribute listing the cohorts",
    "boolean": "A boolean attribute per cohort (In <cohort>)",
    "both": "Both",
}
IDENTIFIERS = {"external_id": "External ID", "user_alias": "User alias", "braze_id": "Braze ID"}
# Objects per /users/track request: 75 combined on current plans, 50 combined on the MAU plans
# (docs/partners/braze.md §2). Braze's refusal does not say which applies: a connection that
# meets it drops to the next cap down (then halves), and remembers the size it learnt.
MAX_OBJECTS_PER_REQUEST = 75
LOWER_OBJECT_CAPS = (50,)
# Requests open at once, by default. Braze allows 3,000 requests per 3 s; at 50-100 ms a
# request, using it takes 50-100 in flight (in flight = rate x latency).
DEFAULT_IN_FLIGHT = 64
MAX_IN_FLIGHT = 256
# Sent when "Test connection" is pressed: an empty batch. Braze checks the key first (401/403),
# then answers 400 with this message, so the key is proven without touching a profile.
EMPTY_BATCH_MESSAGE = "Valid data must be provided"


@dataclass(frozen=True)
class BrazeConfig(PartnerConfig):
    instance: str
    custom_endpoint: str = ""
    membership_mode: str = "array"
    array_attribute: str = "cohortsync_cohorts"
    array_cap: int = DEFAULT_ARRAY_CAP
    default_identifier: str = "external_id"
    alias_label: str = ""
    update_existing_only: bool = True
    objects_per_request: int = 75
    rate_limit_requests: int = 3000
    rate_limit_seconds: int = 3
    max_concurrent_requests: int = DEFAULT_IN_FLIGHT

    def __post_init__(self) -> None:
        if self.instance != CUSTOM and self.instance not in INSTANCES:
            raise ConfigError(f"Unknown Braze instance {self.instance!r}.", "instance")
        if self.instance == CUSTOM:
            object.__setattr__(
                self,
                "custom_endpoint",
                normalise_endpoint(
                    self.custom_endpoint, what="custom REST endpoint", field="custom_endpoint"
                ),
            )
        if self.membership_mode not in MEMBERSHIP_MODES:
            raise ConfigError(
                f"Unknown membership mode {self.membership_mode!r}.", "membership_mode"
            )
        if self.membership_mode in ARRAY_MODES and not _is_attribute_name(self.array_attribute):
            raise ConfigError(
                "The array attribute name must be 1 to 255 characters, without a leading $.",
                "array_attribute",
            )
        if (
            not isinstance(self.array_cap, int)
            or isinstance(self.array_cap, bool)
            or not 1 <= self.array_cap <= MAX_ARRAY_CAP
        ):
            raise ConfigError(
                f"The array cap must be a whole number from 1 to {MAX_ARRAY_CAP:,}.", "array_cap"
            )
        if self.default_identifier not in IDENTIFIERS:
            raise ConfigError(
                f"Unknown identifier {self.default_identifier!r}.", "default_identifier"
            )
        if self.default_identifier == "user_alias" and not self.alias_label.strip():
            raise ConfigError("A user alias needs its alias label.", "alias_label")
        if not 1 <= self.objects_per_request <= MAX_OBJECTS_PER_REQUEST:
            raise ConfigError(
                f"Objects per request must be 1 to {MAX_OBJECTS_PER_REQUEST}.",
                "objects_per_request",
            )
        if not (
            1 <= self.rate_limit_requests <= 1_000_000 and 1 <= self.rate_limit_seconds <= 3600
        ):
            raise ConfigError(
                "The rate limit must be 1 to 1,000,000 requests per 1 to 3,600 s.",
                "rate_limit_requests",
            )
        if not 1 <= self.max_concurrent_requests <= MAX_IN_FLIGHT:
            raise ConfigError(
                f"Maximum concurrent requests must be 1 to {MAX_IN_FLIGHT}.",
                "max_concurrent_requests",
            )

    @property
    def rest_endpoint(self) -> str:
        return self.custom_endpoint if self.instance == CUSTOM else INSTANCES[self.instance]

    def endpoints(self) -> dict[str, str]:
        # Braze's own instances are fixed public hosts; only a custom one is the admin's choice.
        return {"custom_endpoint": self.custom_endpoint} if self.instance == CUSTOM else {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_attribute_name(name: str) -> bool:
    return 0 < len(name) <= 255 and not name.startswith("$") and name.strip() == name


class BrazeConfigForm(forms.Form):
    instance = forms.ChoiceField(
        choices=[
            *((k, f"{k} ({v.removeprefix('https://')})") for k, v in INSTANCES.items()),
            (CUSTOM, "Custom REST endpoint"),
        ],
    )
    custom_endpoint = forms.CharField(
        required=False,
        max_length=200,
        label="Custom REST endpoint",
        help_text="Only for a custom endpoint: https://host",
    )
    membership_mode = forms.ChoiceField(
        choices=list(MEMBERSHIP_MODES.items()), initial="array", label="Membership written as"
    )
    array_attribute = forms.CharField(
        max_length=255, initial="cohortsync_cohorts", required=False, label="Array attribute"
    )
    default_identifier = forms.ChoiceField(
        choices=list(IDENTIFIERS.items()), label="Default identifier"
    )
    array_cap = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ARRAY_CAP,
        initial=DEFAULT_ARRAY_CAP,
        label="Array cap",
        help_text=(
            "The most values Braze keeps in the array attribute; past it Braze drops the oldest. "
            f"{WHERE_TO_READ_THE_CAP} Left blank: {DEFAULT_ARRAY_CAP}. A sync that would make "
            "more cohorts share the attribute than this is refused."
        ),
    )
    alias_label = forms.CharField(
        max_length=100, required=False, help_text="Required when the identifier is a user alias"
    )
    update_existing_only = forms.BooleanField(
        required=False,
        initial=True,
        label="Update existing profiles only",
        help_text=(
            "Never create profiles that Braze does not know. Braze then skips members without a "
            "profile and still answers that it accepted them, so cohortsync counts those adds as "
            "sent, not as in Braze. Off, an add creates the profile. Removals never create one."
        ),
    )
    objects_per_request = forms.IntegerField(
        min_value=1,
        max_value=MAX_OBJECTS_PER_REQUEST,
        initial=MAX_OBJECTS_PER_REQUEST,
        label="Users per request",
        help_text=(
            "75 on current Braze plans, 50 on MAU-based plans (Braze's API usage dashboard shows "
            "yours). If Braze refuses a batch as too large, cohortsync lowers this itself and "
            "notes it on the connection's timeline."
        ),
    )
    rate_limit_requests = forms.IntegerField(min_value=1, max_value=1_000_000, initial=3000)
    rate_limit_seconds = forms.IntegerField(min_value=1, max_value=3600, initial=3)
    max_concurrent_requests = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_IN_FLIGHT,
        label="Maximum concurrent requests",
        initial=DEFAULT_IN_FLIGHT,
        help_text=(
            "Requests open at once, shared by every run of this connection, always within the "
            "rate limit above. Braze allows 3,000 requests per 3 s; at 50 to 100 ms a request "
            "that takes 50 to 100 in flight, so 64 uses most of it."
        ),
    )

    def clean_array_cap(self) -> int:
        value = self.cleaned_data.get("array_cap")
        return DEFAULT_ARRAY_CAP if value is None else int(value)
