"""Data-import keys: generate, rotate, revoke and verify.

A raw key reads `csik_<lookup id>_<secret>`. The row keeps `csik_<lookup id>` as its prefix (to find
it) and an HMAC-SHA256 of the whole raw key keyed with the server secret; the raw key itself is
returned once by generate/rotate and never stored. `verify` is the one entry point for the inbound
API.
"""

import hmac
import ipaddress
import re
import secrets
from datetime import datetime, timedelta
from typing import Literal

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import get_random_string, salted_hmac

from connections.models import ImportKey
from core import audit

KEY_PREFIX = "csik_"
LOOKUP_ID_LENGTH = 12
SECRET_LENGTH = 43  # secrets.token_urlsafe(32)
RAW_KEY_LENGTH = len(KEY_PREFIX) + LOOKUP_ID_LENGTH + 1 + SECRET_LENGTH
# The lookup id is alphanumeric, so the first "_" after it is the separator even though the
# secret part may itself contain "_" and "-".
_RAW_KEY_RE = re.compile(
    rf"{KEY_PREFIX}([A-Za-z0-9]{{{LOOKUP_ID_LENGTH}}})_[A-Za-z0-9_-]{{{SECRET_LENGTH}}}"
)
_HMAC_SALT = "cohortsync.import-key"
NAME_MAX_LENGTH = 100
LAST_USED_RESOLUTION = timedelta(seconds=60)

Actor = User | AnonymousUser | None
RefusalReason = Literal["unknown", "revoked", "expired", "wrong_partner"]


class KeyRefused(Exception):
    """verify() refused a key; `reason` is for code and logs, `message` is safe to show a caller."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason: RefusalReason = reason
        self.message = message


def hash_key(raw_key: str, secret: str | bytes | None = None) -> str:
    """Hex HMAC-SHA256 of the raw key, keyed with `secret` (default: settings.SECRET_KEY)."""
    secret = settings.SECRET_KEY if secret is None else secret
    return salted_hmac(_HMAC_SALT, raw_key, secret=secret, algorithm="sha256").hexdigest()


def _matches(raw_key: str, key_hash: str) -> bool:
    # SECRET_KEY_FALLBACKS keep keys working across a SECRET_KEY rotation.
    for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]:
        if hmac.compare_digest(hash_key(raw_key, secret), key_hash):
            return True
    return False


def _new_raw_key() -> tuple[str, str]:
    """A fresh (prefix, raw key)."""
    prefix = KEY_PREFIX + get_random_string(LOOKUP_ID_LENGTH)
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def _user_pk(actor: Actor) -> int | str | None:
    """The acting user's pk; None for the system actor (management commands, jobs)."""
    return actor.pk if isinstance(actor, User) and actor.is_authenticated else None


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError("A key needs a name.", code="name_required")
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(
            f"A key's name has at most {NAME_MAX_LENGTH} characters.", code="name_too_long"
        )
    return name


def _clean_partner(partner: str) -> str:
    if partner not in ImportKey.Partner.values:
        allowed = ", ".join(ImportKey.Partner.values)
        raise ValidationError(
            f"Unknown partner {partner!r}: choose one of {allowed}.", code="bad_partner"
        )
    return partner


def _create_key(
    *,
    partner: str,
    name: str,
    expires_at: datetime | None,
    actor: Actor,
    now: datetime,
) -> tuple[ImportKey, str]:
    prefix, raw_key = _new_raw_key()
    key = ImportKey.objects.create(
        partner=partner,
        name=name,
        prefix=prefix,
        key_hash=hash_key(raw_key),
        created_at=now,
        created_by_id=_user_pk(actor),
        expires_at=expires_at,
    )
    return key, raw_key


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def generate_import_key(
    *,
    partner: str,
    name: str,
    expires_at: datetime | None = None,
    actor: Actor,
    ip: str | None = None,
) -> tuple[ImportKey, str]:
    """Create a key; returns the row and the raw key, which exists nowhere else afterwards."""
    now = timezone.now()
    partner = _clean_partner(partner)
    name = _clean_name(name)
    if expires_at is not None and expires_at <= now:
        raise ValidationError("The expiry must be in the future.", code="expiry_in_past")
    with transaction.atomic():
        key, raw_key = _create_key(
            partner=partner, name=name, expires_at=expires_at, actor=actor, now=now
        )
        audit.record(
            actor=actor,
            action="import_key.generated",
            target=key,
            details={
                "partner": partner,
                "name": name,
                "prefix": key.prefix,
                "expires_at": _iso(expires_at),
            },
            ip=ip,
        )
    return key, raw_key


def revoke_import_key(*, key: ImportKey, actor: Actor, ip: str | None = None) -> ImportKey:
    """Revoke a key at once. Raises ValidationError when it is already revoked."""
    now = timezone.now()
    with transaction.atomic():
        # Compare-and-set: of two concurrent revokes exactly one wins and is audited.
        changed = ImportKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by_id=_user_pk(actor)
        )
        if not changed:
            raise ValidationError(
                f"The key {key.prefix} is already revoked.", code="already_revoked"
            )
        key.refresh_from_db()
        audit.record(
            actor=actor,
            action="import_key.revoked",
            target=key,
            details={"prefix": key.prefix, "partner": key.partner},
            ip=ip,
        )
    return key


def rotate_import_key(
    *,
    key: ImportKey,
    grace: timedelta | None = None,
    actor: Actor,
    ip: str | None = None,
) -> tuple[ImportKey, str]:
    """Replace a key: returns the new row and raw key; the old key stops working after `grace`.

    `grace` defaults to settings.IMPORT_KEY_ROTATION_GRACE_HOURS (read at call time); zero expires
    the old key now. The new key gets the same partner, name and lifetime (if it had one).
    """
    if grace is None:
        grace = timedelta(hours=settings.IMPORT_KEY_ROTATION_GRACE_HOURS)
    if grace < timedelta(0):
        raise ValidationError("The grace window cannot be negative.", code="negative_grace")
    now = timezone.now()
    with transaction.atomic():
        # Locked so that two concurrent rotations cannot both replace the same key.
        old = ImportKey.objects.select_for_update().get(pk=key.pk)
        status = old.status(now)
        if status in {"revoked", "expired"}:
            raise ValidationError(
                f"The key {old.prefix} is {status} and cannot be rotated; generate a new key.",
                code=f"rotate_{status}",
            )
        if old.replaced_by_id is not None:
            raise ValidationError(
                f"The key {old.prefix} was already rotated; rotate its replacement instead.",
                code="already_rotated",
            )
        lifetime = old.expires_at - old.created_at if old.expires_at is not None else None
        new, raw_key = _create_key(
            partner=old.partner,
            name=old.name,
            expires_at=now + lifetime if lifetime is not None else None,
            actor=actor,
            now=now,
        )
        old.expires_at = min(old.expires_at or now + grace, now + grace)
        old.replaced_by = new
        old.save(update_fields=["expires_at", "replaced_by"])
        audit.record(
            actor=actor,
            action="import_key.rotated",
            target=old,
            details={
                "prefix": old.prefix,
                "replaced_by": new.prefix,
                "grace_seconds": int(grace.total_seconds()),
                "expires_at": _iso(old.expires_at),
            },
            ip=ip,
        )
        audit.record(
            actor=actor,
            action="import_key.generated",
            target=new,
            details={
                "partner": new.partner,
                "name": new.name,
                "prefix": new.prefix,
                "expires_at": _iso(new.expires_at),
                "replaces": old.prefix,
            },
            ip=ip,
        )
    key.refresh_from_db()
    return new, raw_key


# Compared against when the prefix is unknown, so that a miss costs about what a hit costs.
_DUMMY_HASH = "0" * 64


def _valid_ip(ip: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        return None


def _record_use(key: ImportKey, ip: str | None, now: datetime) -> None:
    """Write last_used at most once a minute; of concurrent requests only one updates."""
    threshold = now - LAST_USED_RESOLUTION
    if key.last_used_at is not None and key.last_used_at > threshold:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=threshold)
    ip = _valid_ip(ip)
    if ImportKey.objects.filter(stale, pk=key.pk).update(last_used_at=now, last_used_ip=ip):
        key.last_used_at, key.last_used_ip = now, ip


def verify(
    raw_key: str, partner: str, *, ip: str | None = None, now: datetime | None = None
) -> ImportKey:
    """The key row for `raw_key` if it may push for `partner` now; raises KeyRefused otherwise.

    Reads the row on every call (no cache), so a revoked or expired key fails on the next request.
    """
    now = now or timezone.now()
    # Length first: never run the regex or a query on an arbitrarily long input.
    match = (
        _RAW_KEY_RE.fullmatch(raw_key)
        if isinstance(raw_key, str) and len(raw_key) == RAW_KEY_LENGTH
        else None
    )
    if match is None:
        raise KeyRefused("unknown", "This data-import key is not valid.")
    key = ImportKey.objects.filter(prefix=KEY_PREFIX + match[1]).first()
    if not _matches(raw_key, key.key_hash if key is not None else _DUMMY_HASH) or key is None:
        raise KeyRefused("unknown", "This data-import key is not valid.")
    if key.revoked_at is not None:
        raise KeyRefused("revoked", "This data-import key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise KeyRefused("expired", "This data-import key has expired.")
    if key.partner != partner:
        raise KeyRefused("wrong_partner", "This data-import key belongs to another partner.")
    _record_use(key, ip, now)
    return key
