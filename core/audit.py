"""The audit log: who changed what, written in the same transaction as the change."""

import ipaddress
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, models
from django.http import HttpRequest

from core.models import AuditEntry

SYSTEM_ACTOR = "system"


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address: the peer's, or behind COHORTSYNC_TRUSTED_PROXIES proxies (0 unless
    set) the address the outermost of them saw, that many entries from the right of
    X-Forwarded-For. Entries further left are whatever the client sent, so they are never read.
    Login throttling counts failures per this address."""
    if request is None:
        return None
    proxies = int(getattr(settings, "COHORTSYNC_TRUSTED_PROXIES", 0))
    if proxies > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(hops) >= proxies:
            try:
                return str(ipaddress.ip_address(hops[-proxies]))
            except ValueError:
                pass
    return request.META.get("REMOTE_ADDR") or None


def record(
    *,
    actor: User | AnonymousUser | None,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Write one audit entry. Must run inside the transaction that makes the change."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit.record() must run inside the transaction of the change")
    user = actor if actor is not None and actor.is_authenticated else None
    return AuditEntry.objects.create(
        actor=user,
        actor_label=user.get_username() if user is not None else SYSTEM_ACTOR,
        action=action,
        target_type=target._meta.model_name or "" if target is not None else target_type,
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:200] if target is not None else "",
        details=details or {},
        ip=ip,
    )
