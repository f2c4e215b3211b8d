"""What every partner declares and does: the interface the rest of the house calls, instead of
branching on a connection's kind. The HTTP helper and its errors: connections/partners/http.py."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from django import forms
from django.forms.utils import pretty_name

from connections.partners import redaction
from core.egress_client import EgressClient


@dataclass(slots=True)
class Recipient:
    """One member to send: `ref` is the caller's id for it, opaque to the adapter. A member of
    a trait sync carries the `attributes` to write on its profile (name -> value, None to
    remove one) instead of a membership (only where the partner `takes_traits`).

    A value, never changed once made, though not frozen: the engine makes one for every member
    it sends, and a frozen dataclass's __init__ (object.__setattr__ for each field) cost 470 ns
    against 104 ns for this one."""

    ref: int
    identifier_type: str
    identifier: str
    alias_label: str = ""
    attributes: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RateLimitSignal:
    """What the partner said about its rate limit; `reset_at` is epoch seconds."""

    limit: int | None
    remaining: int | None
    reset_at: float | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "RateLimitSignal | None":
        """Parsed from `X-RateLimit-*` (any case); None when the partner sent none of them."""
        lowered = {key.lower(): value for key, value in headers.items()}

        def number(name: str) -> float | None:
            try:
                return float(lowered[f"x-ratelimit-{name}"])
            except (KeyError, ValueError):
                return None

        limit, remaining, reset_at = number("limit"), number("remaining"), number("reset")
        if limit is None and remaining is None and reset_at is None:
            return None
        return cls(
            limit=None if limit is None else int(limit),
            remaining=None if remaining is None else int(remaining),
            reset_at=reset_at,
        )


@dataclass
class BatchResult:
    """What the partner did with one batch: accepted refs, failed refs with the partner's reason."""

    accepted: list[int]
    failed: list[tuple[int, str]]
    requests: int
    status: int
    rate_limit: RateLimitSignal | None = None


class ConfigError(ValueError):
    """An invalid partner config; `field` names the form field at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PartnerConfig:
    """Marker base for the typed, validated config each partner owns."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def endpoints(self) -> dict[str, str]:
        """The base URLs an admin typed into this config, by form field: the egress policy checks
        where they resolve when the connection is saved (every call checks again anyway)."""
        return {}


def setting_text(value: Any, field: forms.Field | None = None) -> str:
    """A stored setting as a person reads it: Yes or No, a choice's label, 10,000."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(field, forms.ChoiceField):
        labels = {str(choice): str(label) for choice, label in field.choices}  # type: ignore[misc,union-attr]
        return labels.get(str(value), str(value))
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def describe_settings(data: Mapping[str, Any], form: forms.Form) -> list[tuple[str, str]]:
    """Settings as (label, text) rows, labelled as the settings form labels them; the empty ones
    (a custom endpoint when none is used, say) are left out."""
    rows = []
    for name, value in data.items():
        field = form.fields.get(name)
        label = str(field.label) if field is not None and field.label else pretty_name(name)
        rows.append((label, setting_text(value, field)))
    return [(label, text) for label, text in rows if text]


class Direction(StrEnum):
    """Which way members travel: to the partner (destination) or from it (source)."""

    DESTINATION = "destination"
    SOURCE = "source"


@dataclass(frozen=True)
class RateLimit:
    """The requests a connection may make per window, shared by all its runs and workers."""

    requests: int
    seconds: float

    @property
    def text(self) -> str:
        return f"{self.requests:,} requests per {self.seconds:g} s"


@dataclass(frozen=True)
class SharedArray:
    """An array attribute every array-mode sync of a connection writes its cohort's name to,
    and the most values the partner keeps in it (past that it drops the oldest)."""

    attribute: str
    cap: int


@dataclass(frozen=True)
class Prepared:
    """What prepare_sync did: the sync's options from now on, and the requests it made (a run
    counts every request it makes)."""

    options: dict[str, Any]
    requests: int = 0


class SyncOptionsForm(forms.Form):
    """A sync's settings at its partner (Braze: membership mode; AppsFlyer: audience). The sync
    form shows its fields; the services validate a sync's options with it."""

    def __init__(self, *args: Any, config: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = config


class SimulatorEndpoints(Protocol):
    """A partner's endpoints in the partner simulator (connections/sandbox)."""

    def owns(self, path: str) -> bool: ...

    def handle(
        self, state: Any, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any] | bytes]: ...


class Partner:
    """A partner. Subclasses own their config, forms and calls, and declare what the rest of the
    house asks about them, so that nothing outside a partner's package branches on its kind:
    `tests/connections/test_partner_registry.py` checks every registered partner declares it all.
    """

    # Templates read kind and label off the class; without this they would call it.
    do_not_call_in_templates = True

    kind: ClassVar[str]
    label: ClassVar[str]
    # One line for the "choose a partner" page.
    description: ClassVar[str]
    directions: ClassVar[frozenset[Direction]] = frozenset({Direction.DESTINATION})
    credential_label: ClassVar[str]
    config_form: ClassVar[type[forms.Form]]
    config_class: ClassVar[type[PartnerConfig]]
    # Member identifiers the partner takes (names of cohort identifiers), the usual one first.
    identifiers: ClassVar[tuple[str, ...]]
    # What the partner calls an identifier it takes, where its own name differs from ours
    # (AppsFlyer receives an external ID as its customer user ID).
    identifier_names: ClassVar[dict[str, str]] = {}
    # How membership is written at the partner (mode -> description); empty when the partner
    # keeps an audience of its own and there is nothing to choose.
    membership_modes: ClassVar[dict[str, str]] = {}
    # A sync's own settings at this partner, asked on the sync form's identifier step.
    sync_options_form: ClassVar[type[SyncOptionsForm]]
    # Whether one request may carry adds and removes together (Braze: objects of both kinds in
    # one /users/track), so a run's last adds take its first removals along.
    mixes_adds_and_removes: ClassVar[bool] = False
    # The config key holding the most recipients per request: a run that learns a lower limit
    # from the partner's refusal writes it there.
    batch_size_setting: ClassVar[str] = "batch_size"
    # Option keys the partner writes on a sync itself (prepare_sync); kept across edits.
    kept_sync_options: ClassVar[tuple[str, ...]] = ()
    # Whether the partner can read membership back (verify_members): only then may a sync
    # verify a sample of what its runs sent.
    can_verify: ClassVar[bool] = False
    # A source whose cohorts cohortsync downloads on a cadence (Amplitude's Behavioral Cohorts
    # API): its connection page offers to pull them (cohorts/pulls).
    downloads_cohorts: ClassVar[bool] = False
    # Whether a trait sync may write member properties to its profiles as attributes
    # (Recipient.attributes), by `trait_identifier` only; `trait_attribute_error` names the
    # attribute names it refuses.
    takes_traits: ClassVar[bool] = False
    trait_identifier: ClassVar[str] = ""
    simulator: ClassVar[SimulatorEndpoints]

    def __init__(self, config: Any, secret: str) -> None:
        self.config = config
        self.secret = secret

    @classmethod
    def parse_config(cls, data: dict[str, Any]) -> Any:
        """The typed config from stored JSON or a form; ConfigError with a clear message."""
        fields = cls.config_class.__dataclass_fields__  # type: ignore[attr-defined]
        # A field left blank (None) takes the config's default.
        known = {name: data[name] for name in fields if data.get(name) is not None}
        try:
            return cls.config_class(**known)
        except TypeError as exc:
            raise ConfigError(f"Incomplete {cls.label} config: {exc}") from None

    @classmethod
    def config_facts(cls, config: Any) -> list[tuple[str, str]]:
        """The connection page's Configuration rows, as (label, text); a rate limit is one row."""
        return cls._facts(config.to_dict(), config)

    @classmethod
    def _facts(cls, settings: dict[str, Any], config: Any) -> list[tuple[str, str]]:
        limited = "rate_limit_requests" in settings
        for name in ("rate_limit_requests", "rate_limit_seconds"):
            settings.pop(name, None)
        rows = describe_settings(settings, cls.config_form())
        return [*rows, ("Rate limit", cls.rate_limit(config).text)] if limited else rows

    @classmethod
    def secret_fields(cls) -> dict[str, str]:
        """The credential's parts as form fields (name -> label). A connection stores one
        encrypted secret: a partner with several parts packs them into it (pack_secret)."""
        return {"secret": cls.credential_label}

    @classmethod
    def pack_secret(cls, parts: Mapping[str, str]) -> str:
        """The one secret stored for the credential's parts (as named by secret_fields)."""
        return parts["secret"]

    @classmethod
    def hinted_part(cls, secret: str) -> str:
        """The part of the stored secret whose last characters may be shown (••••1a2b)."""
        return secret

    @classmethod
    def simulator_config(cls, endpoint: str) -> dict[str, Any]:
        """Settings of a connection to this partner's simulator at `endpoint` (tests, demos)."""
        raise NotImplementedError

    @classmethod
    def account_key(cls, config: Any) -> str | None:
        """What makes two connections the same destination account, or None if nothing does."""
        return None

    @classmethod
    def unavailable_reason(cls, config: Any, identifier: str) -> str | None:
        """Why a connection with `config` cannot take `identifier`, or None when it can."""
        if identifier not in cls.identifiers:
            return f"{cls.label} does not take this identifier."
        return None

    @classmethod
    def allowed_identifiers(cls, config: Any) -> list[str]:
        return [name for name in cls.identifiers if cls.unavailable_reason(config, name) is None]

    @classmethod
    def default_identifier(cls, config: Any) -> str:
        """The identifier a sync uses when it names none."""
        return cls.allowed_identifiers(config)[0]

    @classmethod
    def default_membership_mode(cls, config: Any) -> str:
        """The connection's own mode, which a sync may override; "" without modes."""
        return ""

    @classmethod
    def membership_mode(cls, config: Any, options: Mapping[str, Any] | None) -> str:
        """The mode a sync writes in: its own override, else its connection's."""
        return str((options or {}).get("membership_mode") or cls.default_membership_mode(config))

    @classmethod
    def rate_limit(cls, config: Any) -> RateLimit:
        raise NotImplementedError

    @classmethod
    def max_in_flight(cls, config: Any) -> int:
        """The most requests the connection keeps open at once, across all its runs and
        workers: its "maximum concurrent requests" setting."""
        return int(config.max_concurrent_requests)

    @classmethod
    def clean_sync_options(
        cls, config: Any, options: Mapping[str, Any], *, current: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """A sync's options, validated (ConfigError with a clear message otherwise). `current`
        is what the sync has now (None for a new sync): what the partner wrote there stays."""
        form = cls.sync_options_form(data=dict(options), config=config)
        unknown = set(options) - set(form.fields) - set(cls.kept_sync_options)
        if unknown:
            taken = ", ".join(form.fields) or "none"
            raise ConfigError(
                f"{cls.label} syncs do not take {', '.join(sorted(unknown))}; options: {taken}."
            )
        if not form.is_valid():
            field, errors = next(iter(form.errors.items()))
            raise ConfigError(f"{field}: {' '.join(str(error) for error in errors)}")
        cleaned = {key: value for key, value in form.cleaned_data.items() if value}
        kept = {key: value for key, value in options.items() if key in cls.kept_sync_options}
        earlier = {
            key: value for key, value in (current or {}).items() if key in cls.kept_sync_options
        }
        return {**earlier, **kept, **cleaned}

    @classmethod
    def applies_every_add(cls, config: Any) -> bool:
        """Whether an add the partner accepts is applied: False where the partner may ignore it
        silently (Braze with "update existing only" skips unknown profiles and still answers
        201), so pages and the API say "sent", not "in the destination"."""
        return True

    @classmethod
    def shared_array(cls, config: Any, options: Mapping[str, Any] | None) -> SharedArray | None:
        """The capped array attribute a sync with `options` writes to, if it writes to one."""
        return None

    @classmethod
    def data_points_per_object(cls, config: Any, options: Mapping[str, Any] | None) -> int | None:
        """What the partner bills for each member a sync with `options` adds or removes, in its
        data points (Braze: one per custom attribute updated); None when it bills none."""
        return None

    @classmethod
    def redact_request(cls, path: str, body: Any, *, sample: int) -> redaction.RedactedRequest:
        """A request body to `path` as a run's page may show it: the first `sample` recipients
        in full, the others counted, their identifiers returned to be masked in the answer.
        Partners override it with what their bodies hold; this default cuts every list and hides
        every string of what it cut."""
        return redaction.sample_lists(body, sample)

    @classmethod
    def trait_attribute_error(cls, name: str) -> str | None:
        """Why the partner would not take `name` as a trait's attribute, or None."""
        return f"{cls.label} does not take member traits."

    def check(self) -> str:
        """A cheap authenticated call: returns what it proved, raises PartnerError otherwise."""
        raise NotImplementedError

    def prepare_sync(self, *, cohort_label: str, options: Mapping[str, Any]) -> "Prepared":
        """Before a run sends anything: make what the destination needs (an AppsFlyer audience,
        say); the options to keep on the sync, and the requests that took. Most need nothing."""
        return Prepared(dict(options))

    def verify_members(
        self,
        *,
        cohort_label: str,
        recipients: Sequence[Recipient],
        options: Mapping[str, Any],
    ) -> set[int]:
        """The refs of `recipients` whose profile at the partner carries the membership a sync
        with `options` writes; one the partner does not know is not verified. Raises
        PartnerError when the partner could not answer. Only where `can_verify`."""
        raise NotImplementedError

    def max_batch_size(self) -> int:
        """The most recipients (adds and removes together) one `send_batch` call accepts."""
        raise NotImplementedError

    def send_batch(
        self,
        *,
        cohort_label: str,
        add: Sequence[Recipient],
        remove: Sequence[Recipient],
        options: Mapping[str, Any],
        client: EgressClient | None = None,
    ) -> BatchResult:
        """Put `add` into and take `remove` out of the cohort at the partner.

        Per-recipient refusals come back in `failed`; a refusal of the whole call raises
        PartnerError. Pass one `client` per run, shared by its threads, so requests reuse
        connections.
        """
        raise NotImplementedError
