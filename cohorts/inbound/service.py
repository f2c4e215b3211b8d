"""Services of the cohort-import API: authenticate a push, rate-limit it, apply it, log it.

Every request with a genuine key ends up as one ImportRequest row: an applied one in the
transaction of its change, a rejected one in a short transaction of its own. A request refused
before it showed a genuine key is only counted (cohorts.inbound.refusals).
"""

import ipaddress
import logging
import math
import time
from dataclasses import dataclass

import django_rq
from django.conf import settings
from django.db import connection, models, transaction
from redis import Redis
from redis.exceptions import RedisError

from cohorts.inbound.schema import CohortUpsert, UsersChange
from cohorts.membership import ChangeCounts, apply_changes, record_change
from cohorts.models import Cohort, ImportRequest
from connections import keys
from connections.models import ImportKey

log = logging.getLogger(__name__)

ENDPOINT_COHORTS = "cohorts"
ENDPOINT_USERS = "cohorts/users"

INVALID_SECRET = "Invalid client secret"  # noqa: S105 -- a message, not a secret
UNAUTHORIZED = "Unauthorized access"
RATE_LIMITED = "Rate limit exceeded"
RATE_WINDOW_SECONDS = 3600
# A Redis outage would otherwise log a warning on every request.
_REDIS_WARNING_INTERVAL = 60.0
_last_redis_warning = 0.0
_redis_clients: dict[str, Redis] = {}


def wrong_partner(prefix: str) -> str:
    return f"Partner not enabled for client with client secret {prefix}…"


def unknown_cohort(cohort_id: str, partner: str) -> str:
    return f"Unknown cohort_id {cohort_id}: create it first with POST /partners/{partner}/cohorts"


class ImportRefused(Exception):
    """The request is refused with `status`; `message` is what the partner sees."""

    def __init__(self, status: int, message: str, *, key: ImportKey | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.key = key


@dataclass(frozen=True)
class RateWindow:
    """Where a key stands in its current one-hour window."""

    limit: int
    count: int
    reset: int  # epoch seconds of the window's end

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    def retry_after(self, now: float | None = None) -> int:
        """Seconds until the window ends (at least 1): the 429's Retry-After."""
        now = time.time() if now is None else now
        return max(1, math.ceil(self.reset - now))

    def headers(self, now: float | None = None) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - self.count)),
            "X-RateLimit-Reset": str(self.reset),
        }
        if self.exceeded:
            headers["Retry-After"] = str(self.retry_after(now))
        return headers


def authenticate(*, raw_key: str, partner: str, ip: str | None) -> ImportKey:
    """The key allowed to push for `partner`; raises ImportRefused (401) with Braze's message."""
    try:
        return keys.verify(raw_key, partner, ip=ip)
    except keys.KeyRefused as refusal:
        if refusal.reason == "unknown":
            raise ImportRefused(401, INVALID_SECRET) from None
        # verify() matched the key's format, so its start is the row's public prefix.
        prefix = raw_key[: len(keys.KEY_PREFIX) + keys.LOOKUP_ID_LENGTH]
        key = ImportKey.objects.filter(prefix=prefix).first()
        message = wrong_partner(prefix) if refusal.reason == "wrong_partner" else UNAUTHORIZED
        raise ImportRefused(401, message, key=key) from None


def _redis() -> Redis:
    # django-rq builds a new client, and so a new connection, on every call: keeping one per
    # process (and per queue config, which tests change) saves a connect and close per request.
    config = repr(settings.RQ_QUEUES.get("default"))
    if config not in _redis_clients:
        _redis_clients[config] = django_rq.get_connection("default")
    return _redis_clients[config]


def count_request(*, key_id: int, now: float | None = None) -> RateWindow | None:
    """Count one request against the key's fixed one-hour window; None when Redis is down."""
    global _last_redis_warning
    now = time.time() if now is None else now
    start = int(now) // RATE_WINDOW_SECONDS * RATE_WINDOW_SECONDS
    name = f"cohortsync:inbound-rate:{key_id}:{start}"
    try:
        # MULTI/EXEC: the counter never exists without its expiry.
        pipe = _redis().pipeline()
        pipe.incr(name)
        pipe.expire(name, RATE_WINDOW_SECONDS + 60)
        count, _ = pipe.execute()
    except RedisError as error:
        # Redis holds nothing that cannot be rebuilt: imports go on without the limit.
        if now - _last_redis_warning >= _REDIS_WARNING_INTERVAL:
            _last_redis_warning = now
            log.warning("Inbound rate limit not enforced, Redis is unreachable: %s", error)
        return None
    return RateWindow(
        limit=settings.INBOUND_RATE_LIMIT_PER_HOUR,
        count=int(count),
        reset=start + RATE_WINDOW_SECONDS,
    )


def _partner_cohorts(partner: str, cohort_id: str) -> "models.QuerySet[Cohort]":
    return Cohort.objects.filter(
        source=Cohort.Source.PARTNER, partner=partner, partner_cohort_id=cohort_id
    )


def _locked_cohort_pk(partner: str, cohort_id: str) -> int | None:
    """The cohort's pk, protected from deletion until this transaction ends.

    On PostgreSQL FOR KEY SHARE does that without serialising concurrent pushes to one cohort
    (their member_count updates do not conflict with it); SQLite writers are serial anyway.
    """
    pks = _partner_cohorts(partner, cohort_id).values_list("pk", flat=True)
    if connection.vendor != "postgresql":
        return pks.first()
    sql, params = pks.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR KEY SHARE", params)
        row = cursor.fetchone()
    return int(row[0]) if row is not None else None


def log_request(
    *,
    key: ImportKey | None,
    partner: str,
    endpoint: str,
    cohort_pk: int | None,
    cohort_id: str,
    http_status: int,
    counts: ChangeCounts | None = None,
    error: str = "",
    ip: str | None,
    status: str | None = None,
) -> ImportRequest:
    """One ImportRequest row; its status follows `error` unless given (a queued webhook batch)."""
    counts = counts or ChangeCounts()
    try:
        ip = str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:  # REMOTE_ADDR is whatever the server put there (a unix socket, say)
        ip = None
    return ImportRequest.objects.create(
        key=key,
        partner=partner,
        endpoint=endpoint,
        cohort_id=cohort_pk,
        partner_cohort_id=cohort_id,
        added=counts.added,
        removed=counts.removed,
        ignored=counts.ignored,
        status=status
        or (ImportRequest.Status.APPLIED if not error else ImportRequest.Status.REJECTED),
        http_status=http_status,
        error=error,
        ip=ip,
    )


def upsert_partner_cohort(
    *, key: ImportKey, partner: str, upsert: CohortUpsert, ip: str | None
) -> Cohort:
    """Create the partner's cohort for `upsert.cohort_id`, or rename it."""
    with transaction.atomic():
        cohort, created = Cohort.objects.get_or_create(
            source=Cohort.Source.PARTNER,
            partner=partner,
            partner_cohort_id=upsert.cohort_id,
            defaults={"name": upsert.name, "partner_created_at": upsert.created_at},
        )
        if not created and cohort.name != upsert.name:
            cohort.name = upsert.name
            cohort.save(update_fields=["name"])
            record_change(cohort.pk, ChangeCounts(), renamed=True)
        log_request(
            key=key,
            partner=partner,
            endpoint=ENDPOINT_COHORTS,
            cohort_pk=cohort.pk,
            cohort_id=upsert.cohort_id,
            http_status=201,
            ip=ip,
        )
    return cohort


def apply_users_change(
    *, key: ImportKey, partner: str, change: UsersChange, ip: str | None
) -> ChangeCounts:
    """Apply one request's adds and removes in bulk, in one transaction with its log row.

    Raises ImportRefused (400) when the partner has no cohort with that id.
    """
    with transaction.atomic():
        cohort_pk = _locked_cohort_pk(partner, change.cohort_id)
        if cohort_pk is None:
            raise ImportRefused(400, unknown_cohort(change.cohort_id, partner), key=key)
        counts = apply_changes(cohort_pk, add=change.add, remove=change.remove)
        # Counted against what was sent, so added + removed + ignored adds up to the request's
        # identifiers, duplicates and overridden changes included.
        counts.ignored = change.sent - counts.added - counts.removed
        log_request(
            key=key,
            partner=partner,
            endpoint=ENDPOINT_USERS,
            cohort_pk=cohort_pk,
            cohort_id=change.cohort_id,
            http_status=201,
            counts=counts,
            ip=ip,
        )
    return counts


def record_rejection(
    *,
    key: ImportKey | None,
    partner: str,
    endpoint: str,
    cohort_id: str,
    http_status: int,
    error: str,
    ip: str | None,
) -> None:
    """Log a refused request; linked to its cohort only when sent with one of the partner's keys."""
    with transaction.atomic():
        cohort_pk = None
        if key is not None and key.partner == partner and cohort_id:
            cohort_pk = _partner_cohorts(partner, cohort_id).values_list("pk", flat=True).first()
        log_request(
            key=key,
            partner=partner,
            endpoint=endpoint,
            cohort_pk=cohort_pk,
            cohort_id=cohort_id,
            http_status=http_status,
            error=error,
            ip=ip,
        )
