"""The audit log: who changed what, written in the same transaction as the change."""

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, models
from django.http import HttpRequest

from core.models import AuditEntry

SYSTEM_ACTOR = "system"


def client_ip(request: HttpRequest | None) -> str | None:
    """The peer address. A proxy's X-Forwarded-For is not trusted: anyone can send one."""
    if request is None:
        return None
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
