"""What every partner adapter shares: the interface, the one exception, the one HTTP helper."""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from django import forms
from django.conf import settings

# Connect fast, but give a busy partner time to answer a large batch.
DEFAULT_TIMEOUT = (5.0, 30.0)


class PartnerError(Exception):
    """A partner call that did not succeed.

    `auth` means the partner refused the credentials (fix them, do not retry); `retryable` means
    the same call may succeed later (429, 5xx, network); `unreachable` means no answer came back.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        auth: bool = False,
        unreachable: bool = False,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.auth = auth
        self.unreachable = unreachable
        self.body = body
        self.headers = headers or {}

    @property
    def rate_limit(self) -> "RateLimitSignal | None":
        """The partner's `X-RateLimit-*` headers on this answer, for backoff until the reset."""
        return RateLimitSignal.from_headers(self.headers)


class BatchTooLarge(PartnerError):
    """The partner refused a request for carrying more than `limit` recipients.

    Not retryable as is: the engine should resend in halves and remember `limit` for the
    connection (AppsFlyer publishes no maximum and only says it in this 400).
    """

    def __init__(self, message: str, *, limit: int, body: Any = None) -> None:
        super().__init__(message, status=400, retryable=False, body=body)
        self.limit = limit


@dataclass(frozen=True)
class PartnerResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipient:
    """One member to send: `ref` is the caller's id for it, opaque to the adapter."""

    ref: int
    identifier_type: str
    identifier: str
    alias_label: str = ""


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


class Partner:
    """A destination partner. Subclasses own their config, form and calls."""

    # Templates read kind and label off the class; without this they would call it.
    do_not_call_in_templates = True

    kind: ClassVar[str]
    label: ClassVar[str]
    credential_label: ClassVar[str]
    config_form: ClassVar[type[forms.Form]]
    config_class: ClassVar[type[PartnerConfig]]

    def __init__(self, config: Any, secret: str) -> None:
        self.config = config
        self.secret = secret

    @classmethod
    def parse_config(cls, data: dict[str, Any]) -> Any:
        """The typed config from stored JSON or a form; ConfigError with a clear message."""
        fields = cls.config_class.__dataclass_fields__  # type: ignore[attr-defined]
        known = {name: data[name] for name in fields if name in data}
        try:
            return cls.config_class(**known)
        except TypeError as exc:
            raise ConfigError(f"Incomplete {cls.label} config: {exc}") from None

    @classmethod
    def account_key(cls, config: Any) -> str | None:
        """What makes two connections the same destination account, or None if nothing does."""
        return None

    def check(self) -> str:
        """A cheap authenticated call: returns what it proved, raises PartnerError otherwise."""
        raise NotImplementedError

    def prepare_sync(self, *, cohort_label: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """Before a run sends anything: make what the destination needs (an AppsFlyer audience,
        say) and return the options to keep on the sync. Most partners need nothing."""
        return dict(options)

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
        session: requests.Session | None = None,
    ) -> BatchResult:
        """Put `add` into and take `remove` out of the cohort at the partner.

        Per-recipient refusals come back in `failed`; a refusal of the whole call raises
        PartnerError. Pass one `session` per run so requests reuse the connection.
        """
        raise NotImplementedError


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "••••") if secret else text


def _message_from(body: Any, fallback: str) -> str:
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        if isinstance(message, str) and message:
            return message
    return fallback


def call(
    method: str,
    url: str,
    *,
    secret: str,
    payload: Any = None,
    session: requests.Session | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> PartnerResponse:
    """One partner request with Bearer auth. Non-2xx answers raise a classified PartnerError."""
    sender = session or requests
    host = urlsplit(url).netloc
    try:
        response = sender.request(
            method,
            url,
            headers={"Authorization": f"Bearer {secret}", "Accept": "application/json"},
            json=payload,
            timeout=timeout,
        )
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise PartnerError(
            f"Could not reach {host} ({reason})", retryable=True, unreachable=True
        ) from None
    try:
        body: Any = response.json() if response.content else {}
    except json.JSONDecodeError:
        body = {}
    headers = {key.lower(): value for key, value in response.headers.items()}
    status = response.status_code
    if 200 <= status < 300:
        return PartnerResponse(status, body, headers)
    message = redact(_message_from(body, f"HTTP {status} {response.reason}"), secret)
    raise PartnerError(
        message,
        status=status,
        retryable=status == 429 or status >= 500,
        auth=status in (401, 403),
        body=body,
        headers=headers,
    )


def normalise_endpoint(raw: str, *, what: str = "endpoint", field: str | None = None) -> str:
    """`host`, `https://host/` → `https://host`; a path, query or bad scheme is refused."""
    value = raw.strip()
    if not value:
        raise ConfigError(f"Enter the {what}.", field=field)
    if "://" not in value:
        value = f"https://{value}"
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"The {what} must look like https://rest.example.com.", field=field)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            f"Enter the {what} without a path or query (for example https://{parts.netloc}), "
            "not a full API URL.",
            field=field,
        )
    try:
        parts.port  # noqa: B018 -- urlsplit only validates the port when it is read
    except ValueError:
        raise ConfigError(f"The {what} has an invalid port.", field=field) from None
    if parts.username or parts.password:
        raise ConfigError(f"The {what} must not contain a user name or password.", field=field)
    if parts.scheme == "http" and not settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS:
        raise ConfigError(
            f"The {what} must use https. Plain http is only allowed when "
            "COHORTSYNC_ALLOW_INSECURE_ENDPOINTS is on (for the partner simulator).",
            field=field,
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"
