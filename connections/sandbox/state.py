"""In-memory state of the partner sandbox, shared by every request handler.

All mutable data sits behind one re-entrant lock (`SandboxState.lock`). Handlers that need
several steps to be atomic (validate, then apply a batch) hold the lock themselves; the small
accessors below take it too, which is why it is re-entrant.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from connections.sandbox.shared import SharedLimits, SharedTokenBucket

DEMO_BRAZE_KEY = "sandbox-braze-rest-key"
DEMO_APPSFLYER_TOKEN = "sandbox-appsflyer-v2-token"  # noqa: S105 - public demo token
DEMO_AMPLITUDE_API_KEY = "sandbox-amplitude-api-key"
DEMO_AMPLITUDE_SECRET_KEY = "sandbox-amplitude-secret-key"  # noqa: S105 - public demo key

PARTNERS = ("braze", "appsflyer")
PLATFORMS = ("android", "ios")

# The demo key may also read profiles back (verification, /users/export/ids).
DEFAULT_BRAZE_PERMISSIONS = frozenset({"users.track", "users.export.ids"})
DEFAULT_BRAZE_OBJECT_CAP = 75
DEFAULT_BRAZE_RATE_LIMIT = 3000
DEFAULT_BRAZE_RATE_WINDOW = 3.0
# /users/export/ids has a budget of its own: 250 requests a minute (docs/partners/braze.md §10.4).
DEFAULT_BRAZE_EXPORT_RATE_LIMIT = 250
DEFAULT_BRAZE_EXPORT_RATE_WINDOW = 60.0
DEFAULT_APPSFLYER_MAX_DEVICES = 10000
# Braze's documented default for an array attribute (docs/partners/braze.md §9), and what an
# add past it does: drop the oldest values (as Braze documents), or refuse the object.
DEFAULT_BRAZE_ARRAY_CAP = 25
ARRAY_OVERFLOWS = ("truncate", "refuse")

JsonDict = dict[str, Any]

# Amplitude's download (docs/partners/amplitude.md §3, §5): polls answered 202 before 200, the
# largest file answered inline (a larger one is a 302 to a storage link), how long a storage
# link lives, and the step-1 requests a project may make in a month.
DEFAULT_AMPLITUDE_POLLS = 1
DEFAULT_AMPLITUDE_INLINE_BYTES = 64 * 1024
DEFAULT_AMPLITUDE_LINK_SECONDS = 60.0
DEFAULT_AMPLITUDE_MONTHLY_QUOTA = 500


@dataclass
class AmplitudeExport:
    """One export job: which cohort, with which properties, and how it ends."""

    cohort_id: str
    prop_keys: tuple[str, ...] | None  # None: no properties (props=0); () all of them
    polls_left: int
    fails: bool
    # The file, made once when the job completes (as Amplitude's job writes it): /file and
    # the storage link serve these bytes, however many times they are asked.
    data: bytes | None = None


@dataclass
class AmplitudeLink:
    """A pre-signed storage link: the job whose file it serves, until it expires."""

    request_id: str
    expires_at: float
    expired: bool = False


# One AppsFlyer audience member: the device object's non-empty fields, frozen to sit in a set.
Member = frozenset[tuple[str, str]]


class RateVerdict(NamedTuple):
    allowed: bool
    limit: int
    remaining: int
    reset: int  # UTC epoch seconds at which the bucket is full again

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class TokenBucket:
    """`capacity` requests per `window` seconds, refilled continuously."""

    def __init__(self, capacity: int, window: float) -> None:
        self.capacity = capacity
        self.window = window
        self._tokens = float(capacity)
        self._updated = time.time()

    def take(self, consume: bool = True) -> RateVerdict:
        now = time.time()
        rate = self.capacity / self.window
        self._tokens = min(float(self.capacity), self._tokens + (now - self._updated) * rate)
        self._updated = now
        allowed = self._tokens >= 1.0
        if allowed and consume:
            self._tokens -= 1.0
        reset = math.ceil(now + (self.capacity - self._tokens) / rate)
        return RateVerdict(allowed, self.capacity, math.floor(self._tokens), reset)


class Bucket(Protocol):
    """A rate limit: this process's own (TokenBucket) or every process's (SharedTokenBucket)."""

    @property
    def capacity(self) -> int: ...

    @property
    def window(self) -> float: ...

    def take(self, consume: bool = True) -> RateVerdict: ...


def _bucket(shared: SharedTokenBucket | None, capacity: int, window: float) -> Bucket:
    """A full bucket of this limit: the shared one reconfigured when the processes share one."""
    if shared is None:
        return TokenBucket(capacity, window)
    shared.reconfigure(capacity, window)
    return shared


@dataclass
class Audience:
    audience_id: int
    import_key: str
    name: str
    platform: str
    members: set[Member] = field(default_factory=set)

    def snapshot(self) -> JsonDict:
        members = sorted((dict(sorted(member)) for member in self.members), key=_member_sort_key)
        return {
            "audience_id": self.audience_id,
            "import_key": self.import_key,
            "name": self.name,
            "platform": self.platform,
            "member_count": len(members),
            "members": members,
        }


def _member_sort_key(member: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(member.items())


class SandboxState:
    """Credentials, partner data, injected faults and counters of one sandbox instance.

    `shared`: the rate limits every process of a multi-process simulator counts against
    (connections/sandbox/shared.py); without it, the limits are this instance's own.
    """

    def __init__(self, shared: SharedLimits | None = None) -> None:
        self.lock = threading.RLock()
        self.shared = shared
        self.reset()

    def reset(self) -> None:
        """Forget everything and re-seed the demo credentials with default limits."""
        with self.lock:
            self.braze_keys: dict[str, set[str]] = {DEMO_BRAZE_KEY: set(DEFAULT_BRAZE_PERMISSIONS)}
            self.braze_revoked: set[str] = set()
            self.appsflyer_tokens: set[str] = {DEMO_APPSFLYER_TOKEN}
            self.appsflyer_revoked: set[str] = set()
            self.braze_profiles: dict[str, JsonDict] = {}
            # Update-only objects aimed at unknown profiles: accepted by Braze, applied to nobody.
            self.braze_skipped: list[JsonDict] = []
            self.braze_events: list[JsonDict] = []
            # Profile keys whose attribute objects Braze rejects by index, with the error type.
            self.braze_rejections: dict[str, str] = {}
            self.audiences: dict[str, Audience] = {}
            self.next_audience_id = 1
            self.fault_statuses: dict[str, deque[int]] = {p: deque() for p in PARTNERS}
            self.latency_ms: dict[str, int] = {p: 0 for p in PARTNERS}
            self.braze_object_cap = DEFAULT_BRAZE_OBJECT_CAP
            self.braze_array_cap = DEFAULT_BRAZE_ARRAY_CAP
            self.braze_array_overflow = ARRAY_OVERFLOWS[0]
            shared = self.shared
            self.braze_bucket = _bucket(
                None if shared is None else shared.braze,
                DEFAULT_BRAZE_RATE_LIMIT,
                DEFAULT_BRAZE_RATE_WINDOW,
            )
            self.braze_export_bucket = _bucket(
                None if shared is None else shared.braze_export,
                DEFAULT_BRAZE_EXPORT_RATE_LIMIT,
                DEFAULT_BRAZE_EXPORT_RATE_WINDOW,
            )
            # The share (0-100) of membership adds silently dropped, yet answered 201: a stand-in
            # for whatever makes a partner lose writes, which only verification can see.
            self.braze_drop_adds_pct = 0.0
            self.braze_dropped: list[JsonDict] = []
            self.appsflyer_max_devices = DEFAULT_APPSFLYER_MAX_DEVICES
            # AppsFlyer publishes no rate limit and sends no rate-limit headers: None is no
            # limit; a number is requests per second, past which it answers a bare 429.
            self.appsflyer_bucket: Bucket | None = None
            if shared is not None:
                shared.appsflyer.reconfigure(0, 1.0)
            self.request_counts: dict[str, dict[str, int]] = {}
            self.connections_opened = 0
            # Amplitude: (api key, secret key) pairs it accepts, and the project's cohort list.
            self.amplitude_keys: set[tuple[str, str]] = {
                (DEMO_AMPLITUDE_API_KEY, DEMO_AMPLITUDE_SECRET_KEY)
            }
            self.amplitude_cohorts: list[JsonDict] = []
            # The Behavioral Cohorts download (docs/partners/amplitude.md §3-§5, §12): members
            # per cohort id (each a dict of CSV columns, `user_id` among them), export jobs by
            # request id, storage links by token, and step-1 requests per key pair and month.
            self.amplitude_members: dict[str, list[JsonDict]] = {}
            self.amplitude_exports: dict[str, AmplitudeExport] = {}
            self.amplitude_links: dict[str, AmplitudeLink] = {}
            self.amplitude_downloads: dict[str, int] = {}
            # Authorization headers that reached a storage link (there should be none).
            self.amplitude_storage_auth: list[str] = []
            self.amplitude_polls = DEFAULT_AMPLITUDE_POLLS
            self.amplitude_fail_jobs = 0
            self.amplitude_inline_bytes = DEFAULT_AMPLITUDE_INLINE_BYTES
            self.amplitude_link_seconds = DEFAULT_AMPLITUDE_LINK_SECONDS
            self.amplitude_monthly_quota = DEFAULT_AMPLITUDE_MONTHLY_QUOTA
            # Amplitude does not say which status an exhausted quota gets: configurable.
            self.amplitude_quota_status = 429
            self.next_amplitude_request = 1

    # Credentials

    def add_braze_key(
        self, key: str, permissions: Iterable[str] = DEFAULT_BRAZE_PERMISSIONS
    ) -> None:
        with self.lock:
            self.braze_keys[key] = set(permissions)
            self.braze_revoked.discard(key)

    def revoke_braze_key(self, key: str) -> None:
        with self.lock:
            self.braze_revoked.add(key)

    def braze_key_permissions(self, key: str) -> set[str] | None:
        """The key's permissions, or None when the key is unknown or revoked."""
        with self.lock:
            if key in self.braze_revoked or key not in self.braze_keys:
                return None
            return set(self.braze_keys[key])

    def add_appsflyer_token(self, token: str) -> None:
        with self.lock:
            self.appsflyer_tokens.add(token)
            self.appsflyer_revoked.discard(token)

    def revoke_appsflyer_token(self, token: str) -> None:
        with self.lock:
            self.appsflyer_revoked.add(token)

    def appsflyer_token_valid(self, token: str) -> bool:
        with self.lock:
            return token in self.appsflyer_tokens and token not in self.appsflyer_revoked

    # Faults and limits

    def set_faults(
        self, partner: str, statuses: Iterable[int] | None, latency_ms: int | None
    ) -> None:
        with self.lock:
            if statuses is not None:
                self.fault_statuses[partner] = deque(statuses)
            if latency_ms is not None:
                self.latency_ms[partner] = latency_ms

    def reject_braze_objects(self, keys: Iterable[str], error: str) -> None:
        """Answer objects for these profile keys with a per-object error, as Braze does for
        objects it cannot apply; the rest of each request is applied."""
        with self.lock:
            self.braze_rejections.update(dict.fromkeys(keys, error))

    def pop_fault(self, partner: str) -> int | None:
        """The next injected status for this partner, consumed, or None when none is queued."""
        with self.lock:
            queue = self.fault_statuses[partner]
            return queue.popleft() if queue else None

    def latency_seconds(self, partner: str) -> float:
        with self.lock:
            return self.latency_ms[partner] / 1000.0

    def take_braze_token(self, consume: bool = True) -> RateVerdict:
        with self.lock:
            return self.braze_bucket.take(consume)

    def take_braze_export_token(self) -> RateVerdict:
        with self.lock:
            return self.braze_export_bucket.take()

    def config(self) -> JsonDict:
        with self.lock:
            return {
                "braze_object_cap": self.braze_object_cap,
                "braze_array_cap": self.braze_array_cap,
                "braze_array_overflow": self.braze_array_overflow,
                "braze_rate_limit": self.braze_bucket.capacity,
                "braze_rate_window": self.braze_bucket.window,
                "appsflyer_max_devices": self.appsflyer_max_devices,
                "appsflyer_rate_limit": (
                    None if self.appsflyer_bucket is None else self.appsflyer_bucket.capacity
                ),
                "braze_drop_adds_pct": self.braze_drop_adds_pct,
            }

    def configure(
        self,
        braze_object_cap: int | None = None,
        braze_rate_limit: int | None = None,
        braze_rate_window: float | None = None,
        appsflyer_max_devices: int | None = None,
        braze_array_cap: int | None = None,
        braze_array_overflow: str | None = None,
        braze_drop_adds_pct: float | None = None,
        appsflyer_rate_limit: int | None = None,
    ) -> JsonDict:
        with self.lock:
            if braze_object_cap is not None:
                self.braze_object_cap = braze_object_cap
            if braze_array_cap is not None:
                self.braze_array_cap = braze_array_cap
            if braze_array_overflow is not None:
                self.braze_array_overflow = braze_array_overflow
            if braze_rate_limit is not None or braze_rate_window is not None:
                # A new limit starts from a full bucket, so tests get predictable counts.
                self.braze_bucket = _bucket(
                    None if self.shared is None else self.shared.braze,
                    braze_rate_limit or self.braze_bucket.capacity,
                    braze_rate_window or self.braze_bucket.window,
                )
            if appsflyer_max_devices is not None:
                self.appsflyer_max_devices = appsflyer_max_devices
            if braze_drop_adds_pct is not None:
                self.braze_drop_adds_pct = float(braze_drop_adds_pct)
            if appsflyer_rate_limit is not None:
                self.appsflyer_bucket = _bucket(
                    None if self.shared is None else self.shared.appsflyer,
                    appsflyer_rate_limit,
                    1.0,
                )
            return self.config()

    def take_appsflyer_token(self) -> bool:
        """Whether AppsFlyer's (unpublished) rate limit lets one more request through."""
        with self.lock:
            return self.appsflyer_bucket is None or self.appsflyer_bucket.take().allowed

    # Amplitude's download

    def seed_amplitude_cohort(
        self, cohort_id: str, name: str, members: list[JsonDict], *, append: bool = False
    ) -> int:
        """List the cohort (or replace it) with these members, each a dict of CSV columns;
        `append` adds them to its members instead (a large cohort arrives in several requests,
        each under the server's body limit). Returns the cohort's size."""
        with self.lock:
            kept = self.amplitude_members.get(cohort_id, []) if append else []
            kept.extend(dict(member) for member in members)
            self.amplitude_members[cohort_id] = kept
            self.amplitude_cohorts = [c for c in self.amplitude_cohorts if c["id"] != cohort_id]
            self.amplitude_cohorts.append(
                {"id": cohort_id, "name": name, "size": len(kept), "archived": False}
            )
            return len(kept)

    def configure_amplitude(self, **knobs: int | float | None) -> JsonDict:
        with self.lock:
            for name, value in knobs.items():
                if value is not None:
                    setattr(self, f"amplitude_{name}", value)
            return self.amplitude_config()

    def amplitude_config(self) -> JsonDict:
        with self.lock:
            return {
                "polls": self.amplitude_polls,
                "fail_jobs": self.amplitude_fail_jobs,
                "inline_bytes": self.amplitude_inline_bytes,
                "link_seconds": self.amplitude_link_seconds,
                "monthly_quota": self.amplitude_monthly_quota,
                "quota_status": self.amplitude_quota_status,
            }

    def expire_amplitude_links(self) -> int:
        """Expire every storage link handed out so far, as a minute passing would."""
        with self.lock:
            for link in self.amplitude_links.values():
                link.expired = True
            return len(self.amplitude_links)

    def amplitude_usage(self) -> JsonDict:
        with self.lock:
            return {
                "downloads": dict(self.amplitude_downloads),
                "storage_authorization_seen": len(self.amplitude_storage_auth),
            }

    # Partner data reads

    def profile(self, key: str) -> JsonDict | None:
        with self.lock:
            found = self.braze_profiles.get(key)
            return None if found is None else _deep_copy(found)

    def profiles(self) -> dict[str, JsonDict]:
        with self.lock:
            return {key: _deep_copy(attrs) for key, attrs in self.braze_profiles.items()}

    def skipped_updates(self) -> list[JsonDict]:
        with self.lock:
            return [dict(item) for item in self.braze_skipped]

    def dropped_adds(self) -> list[JsonDict]:
        with self.lock:
            return [dict(item) for item in self.braze_dropped]

    def audience(self, import_key: str) -> JsonDict | None:
        with self.lock:
            found = self.audiences.get(import_key)
            return None if found is None else found.snapshot()

    def audience_name_taken(self, name: str) -> bool:
        with self.lock:
            return any(audience.name == name for audience in self.audiences.values())

    def create_audience(self, name: str, platform: str, import_key: str) -> Audience:
        with self.lock:
            audience = Audience(self.next_audience_id, import_key, name, platform)
            self.next_audience_id += 1
            self.audiences[import_key] = audience
            return audience

    # Counters

    def record_request(self, endpoint: str, status: int) -> None:
        with self.lock:
            per_status = self.request_counts.setdefault(endpoint, {})
            per_status[str(status)] = per_status.get(str(status), 0) + 1

    def record_connection(self) -> None:
        with self.lock:
            self.connections_opened += 1

    def stats(self) -> JsonDict:
        with self.lock:
            return {
                "requests": {endpoint: dict(c) for endpoint, c in self.request_counts.items()},
                "connections": self.connections_opened,
            }


def _deep_copy(value: Any) -> Any:
    """Copy JSON-shaped data (dicts, lists, scalars) so readers never see later mutation."""
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value
