"""The one HTTP helper every partner call goes through, and what it raises: timeouts, JSON
handling and the classification of an answer (retry it, fix the credentials, or give up).
Every call obeys the egress policy (core/egress.py, invariant 10 in docs/architecture.md), and
inside `exchanges.recording()` is noted with its answer (connections/partners/exchanges.py)."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, cast
from urllib.parse import urlsplit

import orjson
import requests
import urllib3
from django.conf import settings

from connections.partners import exchanges
from connections.partners.base import ConfigError, PartnerConfig, RateLimitSignal
from core import egress, egress_client, egress_http
from core.egress_client import EgressClient

# Connect fast, but give a busy partner time to answer a large batch.
DEFAULT_TIMEOUT = (5.0, 30.0)
# What is kept of a partner's own message: it lands on pages any viewer reads.
MESSAGE_CHARS = 120
# What a recorded exchange keeps of an answer that is not JSON (an HTML error page, say).
RAW_ANSWER_CHARS = 8_000


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
    def rate_limit(self) -> RateLimitSignal | None:
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


class ObjectsRefused(PartnerError):
    """The partner refused the whole request and said which recipients were at fault: `failed`
    holds their refs with the partner's reason for each (Braze answers 400 with per-object
    errors when no object of a batch is valid). The others may be sent again without them."""

    def __init__(self, message: str, *, failed: list[tuple[int, str]], body: Any = None) -> None:
        super().__init__(message, status=400, retryable=False, body=body)
        self.failed = failed


@dataclass(frozen=True)
class PartnerResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "••••") if secret else text


def _message_from(body: Any, fallback: str) -> str:
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        if isinstance(message, str) and message:
            return message
    return fallback


class InvalidJSONError(ValueError):
    """The payload cannot be sent as JSON (a NaN, say): requests' name for it, kept in notes."""


# What a call raises when no answer came: the policy refused it, the payload is not JSON, or the
# network failed.
NO_ANSWER: tuple[type[Exception], ...] = (
    egress.EgressRefused,
    InvalidJSONError,
    *egress_client.FAILURES,
)


def _json_body(payload: Any) -> bytes | None:
    """The payload as JSON, strict as requests encoded it (no NaN or Infinity), or no body.

    orjson writes a 75-object Braze body in 3 µs where the json module takes 50, one body per
    request. It writes NaN and Infinity as null, though: a body with a null in it (or one
    orjson does not take, such as an integer past 64 bits) is encoded again by the json module,
    strictly, so a NaN is refused as before and never sent as null."""
    if payload is None:
        return None
    try:
        body = orjson.dumps(payload)
    except TypeError:
        body = None
    if body is not None and b"null" not in body:
        return body
    try:
        return json.dumps(payload, allow_nan=False).encode()
    except ValueError as exc:
        raise InvalidJSONError(str(exc)) from None


def call(
    method: str,
    url: str,
    *,
    secret: str,
    payload: Any = None,
    client: EgressClient | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    authorization: str | None = None,
) -> PartnerResponse:
    """One partner request with Bearer auth. Non-2xx answers raise a classified PartnerError.

    Pass the `client` of a run (one, shared by its threads) to reuse its connections; without
    one, a client is made for this call alone. Either obeys the egress policy and follows no
    redirect. `authorization` replaces the Bearer header for partners that want another scheme
    (Amplitude: Basic); `secret` is still what is redacted from the partner's messages.
    """
    sender = client if client is not None else EgressClient()
    host = urlsplit(url).netloc
    sent = exchanges.pending(method, url, payload, secret)
    headers = {
        "Authorization": authorization or f"Bearer {secret}",
        "Accept": "application/json",
    }
    try:
        body = _json_body(payload)
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = sender.request(method, url, headers=headers, body=body, timeout=timeout)
    except NO_ANSWER as exc:
        unreached = _unreached(host, exc)
        if sent is not None:
            sent.answered(None, None, note=unreached.message)
        raise unreached from None
    finally:
        if client is None:
            sender.close()
    content = response.data
    try:
        answer: Any = json.loads(content) if content else {}
    except ValueError:  # not JSON, or not text at all
        answer = {}
    if sent is not None:
        sent.answered(response.status, answer or _text(response)[:RAW_ANSWER_CHARS])
    answer_headers = {key.lower(): value for key, value in response.headers.items()}
    status = response.status
    if 200 <= status < 300:
        return PartnerResponse(status, answer, answer_headers)
    if 300 <= status < 400:
        # Following it would send the credentials to wherever the answer points.
        raise PartnerError(
            f"{host} answered HTTP {status}, a redirect, which cohortsync does not follow: "
            "set the endpoint to the address the partner serves its API at.",
            status=status,
            headers=answer_headers,
        )
    raise _refusal(status, response.reason, answer, answer_headers, secret)


def _text(response: urllib3.BaseHTTPResponse) -> str:
    """The answer's body as text, in the charset it names (UTF-8 when it names none)."""
    charset = "utf-8"
    for parameter in response.headers.get("content-type", "").split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip("\"' ")
    try:
        return response.data.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return response.data.decode("utf-8", errors="replace")


def _unreached(host: str, exc: Exception) -> PartnerError:
    """No answer: the egress policy refused the address (not retryable: it will not become
    allowed by waiting), or the network failed (retryable)."""
    if isinstance(exc, egress.EgressRefused):
        return PartnerError(f"Refused to call {host}: {exc}", unreachable=True)
    reason = egress_client.failure_name(exc)
    return PartnerError(f"Could not reach {host} ({reason})", retryable=True, unreachable=True)


def _refusal(
    status: int, reason: str | None, body: Any, headers: dict[str, str], secret: str
) -> PartnerError:
    """A non-2xx, non-3xx answer, classified: retry it, fix the credentials, or give up."""
    # Redacted before it is cut, so no part of the secret survives at the cut.
    full = redact(_message_from(body, f"HTTP {status} {reason}"), secret)
    return PartnerError(
        egress.excerpt(full, MESSAGE_CHARS),
        status=status,
        retryable=status == 429 or status >= 500,
        auth=status in (401, 403),
        body=body,
        headers=headers,
    )


@dataclass(frozen=True)
class StreamedResponse:
    """A 2xx or 3xx answer whose body is read as it arrives (`raw`, bytes), never whole."""

    status: int
    headers: dict[str, str]
    raw: IO[bytes]

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


@contextmanager
def stream(
    url: str,
    *,
    secret: str,
    authorization: str | None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> Iterator[StreamedResponse]:
    """GET a file through the egress policy, its body streamed, for files too large to hold.

    `authorization` None sends no Authorization header at all: a pre-signed storage link a
    partner redirected to must not receive the partner's credentials. A 3xx is handed back (its
    `location`) for the caller to follow explicitly with a second call; other non-2xx answers
    raise a classified PartnerError, as `call` does.
    """
    host = urlsplit(url).netloc
    headers = {"Authorization": authorization} if authorization else {}
    sender = egress_http.session()
    try:
        try:
            response = sender.get(
                url, headers=headers, timeout=timeout, allow_redirects=False, stream=True
            )
        except (egress.EgressRefused, requests.RequestException) as exc:
            raise _unreached(host, exc) from None
        with response:
            answer_headers = {key.lower(): value for key, value in response.headers.items()}
            if not 200 <= response.status_code < 400:
                try:
                    body: Any = response.json() if response.content else {}
                except (json.JSONDecodeError, requests.RequestException):
                    body = {}
                raise _refusal(response.status_code, response.reason, body, answer_headers, secret)
            # Content-Encoding (gzip) is undone as the body is read.
            response.raw.decode_content = True
            yield StreamedResponse(
                response.status_code, answer_headers, cast(IO[bytes], response.raw)
            )
    finally:
        sender.close()


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
    endpoint = f"{parts.scheme}://{parts.netloc.lower()}"
    try:
        # No DNS query here: configs are parsed on every load. ConnectionForm adds the resolved
        # check when an admin saves (check_endpoints), and every connection checks again.
        egress.check_url(endpoint)
    except egress.EgressRefused as exc:
        raise ConfigError(f"The {what} is not allowed: {exc}", field=field) from None
    return endpoint


def check_endpoints(config: PartnerConfig) -> None:
    """The egress policy on the addresses the config's endpoints resolve to now: for the moment
    an admin saves them. Raises ConfigError naming the field."""
    for field_name, url in config.endpoints().items():
        try:
            egress.check_url(url, resolve_now=True)
        except egress.EgressRefused as exc:
            raise ConfigError(f"This endpoint is not allowed: {exc}", field=field_name) from None
