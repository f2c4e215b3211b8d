"""Personal API tokens: create, revoke and verify.

A raw token reads `cs_<lookup id>_<secret>`. Like data-import keys (connections.keys, whose keyed
hash this reuses), the row keeps `cs_<lookup id>` as its prefix to find it and an HMAC-SHA256 of
the whole raw token; the raw token is returned once by create_api_token and never stored.
`verify_api_token` is the one entry point for the API's authentication.
"""

import hmac
import re
import secrets
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import get_random_string

from api.models import ApiToken
from connections.keys import LAST_USED_RESOLUTION, hash_key
from core import audit
from core.roles import user_role

TOKEN_PREFIX = "cs_"  # noqa: S105 -- the public start of every token, not a secret
LOOKUP_ID_LENGTH = 8
SECRET_LENGTH = 43  # secrets.token_urlsafe(32)
RAW_TOKEN_LENGTH = len(TOKEN_PREFIX) + LOOKUP_ID_LENGTH + 1 + SECRET_LENGTH
# The lookup id is alphanumeric, so the first "_" after it is the separator.
_RAW_TOKEN_RE = re.compile(
    rf"{TOKEN_PREFIX}([A-Za-z0-9]{{{LOOKUP_ID_LENGTH}}})_[A-Za-z0-9_-]{{{SECRET_LENGTH}}}"
)
NAME_MAX_LENGTH = 100
# Compared against when the prefix is unknown, so that a miss costs about what a hit costs.
_DUMMY_HASH = "0" * 64


class TokenRefused(Exception):
    """verify_api_token() refused a token; the message is safe to show the caller."""


def _matches(raw_token: str, token_hash: str) -> bool:
    # SECRET_KEY_FALLBACKS keep tokens working across a SECRET_KEY rotation.
    return any(
        hmac.compare_digest(hash_key(raw_token, secret), token_hash)
        for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    )


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A token needs a name, e.g. what script uses it."})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": f"A token's name has at most {NAME_MAX_LENGTH} characters."})
    return name


def create_api_token(
    *, user: User, name: str, actor: User | None, ip: str | None = None
) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the raw token, which exists nowhere else.

    Only an active user with a role may hold one: an outsider could do nothing with it.
    """
    name = _clean_name(name)
    if not user.is_active:
        raise ValidationError(f"{user.get_username()} is deactivated.")
    if user_role(user) is None:
        raise ValidationError(f"{user.get_username()} has no role: give them one first.")
    prefix = TOKEN_PREFIX + get_random_string(LOOKUP_ID_LENGTH)
    raw_token = f"{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, prefix=prefix, token_hash=hash_key(raw_token)
        )
        audit.record(
            actor=actor,
            action="api_token.created",
            target=token,
            details={"user": user.get_username(), "name": name, "prefix": prefix},
            ip=ip,
        )
    return token, raw_token


def revoke_api_token(*, token: ApiToken, actor: User | None, ip: str | None = None) -> ApiToken:
    """Revoke a token at once. Raises ValidationError when it is already revoked."""
    with transaction.atomic():
        # Compare-and-set: of two concurrent revokes exactly one wins and is audited.
        changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if not changed:
            raise ValidationError(f"The token {token.prefix} is already revoked.")
        token.refresh_from_db()
        audit.record(
            actor=actor,
            action="api_token.revoked",
            target=token,
            details={"user": token.user.get_username(), "prefix": token.prefix},
            ip=ip,
        )
    return token


def _record_use(token: ApiToken, now: datetime) -> None:
    """Write last_used_at at most once a minute; of concurrent requests only one updates."""
    threshold = now - LAST_USED_RESOLUTION
    if token.last_used_at is not None and token.last_used_at > threshold:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=threshold)
    if ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now):
        token.last_used_at = now


def verify_api_token(raw_token: str, *, now: datetime | None = None) -> ApiToken:
    """The token row (with its user) for `raw_token` if it may be used now; raises TokenRefused.

    Reads the row on every call (no cache), so a revoked token fails on the very next request.
    """
    now = now or timezone.now()
    # Length first: never run the regex or a query on an arbitrarily long input.
    match = (
        _RAW_TOKEN_RE.fullmatch(raw_token)
        if isinstance(raw_token, str) and len(raw_token) == RAW_TOKEN_LENGTH
        else None
    )
    if match is None:
        raise TokenRefused("This API token is not valid.")
    token = ApiToken.objects.select_related("user").filter(prefix=TOKEN_PREFIX + match[1]).first()
    if not _matches(raw_token, token.token_hash if token is not None else _DUMMY_HASH) or (
        token is None
    ):
        raise TokenRefused("This API token is not valid.")
    if token.revoked_at is not None:
        raise TokenRefused("This API token has been revoked.")
    if not token.user.is_active:
        raise TokenRefused("The user of this API token is deactivated.")
    _record_use(token, now)
    return token
