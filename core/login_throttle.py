"""Login throttling: django-axes counts failed logins per account and per address (the settings
under "Login throttling"); this module is what cohortsync adds around it.

- The account is the email as a person would mean it: case and surrounding spaces do not make a
  new account to guess at.
- A refused login is the login page again with a clear message, status 429 and `Retry-After`.
- The start of each lock is an audit entry (`login.locked_out`); an admin's unlock is another
  (`login.unlocked`).
- `current_lockouts` lists what is locked now; `unlock` lifts a lock (the `unlock_login` command
  and the admins' page /accounts/lockouts/).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from axes.attempts import get_cool_off_threshold
from axes.models import AccessAttempt
from axes.utils import reset as reset_attempts
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from core import audit

USERNAME_MAX_LENGTH = 254
Kind = Literal["account", "address"]


def lockout_seconds() -> int:
    """How long a lock lasts after the last attempt (COHORTSYNC_LOGIN_LOCKOUT_MINUTES)."""
    cool_off: timedelta = settings.AXES_COOLOFF_TIME
    return int(cool_off.total_seconds())


def lockout_minutes() -> int:
    return max(1, lockout_seconds() // 60)


def locked_out_message() -> str:
    return (
        "Too many failed logins for this account or from this address. Logging in is paused "
        f"for {lockout_minutes()} minutes after the last attempt: try again later, or ask an "
        "admin to unlock it."
    )


def normalised_username(raw: object) -> str | None:
    return raw.strip().lower()[:USERNAME_MAX_LENGTH] if isinstance(raw, str) else None


def attempted_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """AXES_USERNAME_CALLABLE: the account a login attempt is counted against."""
    if credentials is not None:
        return normalised_username(credentials.get("username"))
    return normalised_username(request.POST.get("username"))


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the login page with the lock explained, 429 and Retry-After (the
    lock lasts the lockout time after the last attempt, which this one was)."""
    form = AuthenticationForm(request, initial={"username": request.POST.get("username", "")})
    context = {
        "form": form,
        "lockout": locked_out_message(),
        "next": request.POST.get("next") or request.GET.get("next", ""),
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(lockout_seconds())
    return response


def _failures(since: datetime, **match: Any) -> int:
    total = AccessAttempt.objects.filter(attempt_time__gte=since, **match).aggregate(
        total=Sum("failures_since_start")
    )["total"]
    return int(total or 0)


def audit_lockout(
    sender: Any, request: HttpRequest, username: str | None, ip_address: str | None, **_: Any
) -> None:
    """Receiver of axes' user_locked_out: one audit entry when an account's or an address's
    failures reach the limit. Attempts while locked send the signal again and are not audited,
    so an attack that keeps trying writes one entry, not one per try."""
    since = get_cool_off_threshold(request)
    limit = int(settings.AXES_FAILURE_LIMIT)
    started: list[Kind] = []
    if username is not None and _failures(since, username=username) == limit:
        started.append("account")
    if _failures(since, ip_address=ip_address) == limit:
        started.append("address")
    if not started:
        return
    user = get_user_model().objects.filter(username=username).first() if username else None
    with transaction.atomic():
        audit.record(
            actor=None,
            action="login.locked_out",
            target=user,
            target_type="" if user is not None else "login",
            details={
                "username": username or "",
                "locked": started,
                "failures": limit,
                "minutes": lockout_minutes(),
            },
            ip=ip_address,
        )


@dataclass(frozen=True)
class Lockout:
    kind: Kind
    value: str  # the account's email, or the address
    failures: int
    until: datetime


def current_lockouts(now: datetime | None = None) -> list[Lockout]:
    """Every account and address locked now, the latest attempt first."""
    now = now or timezone.now()
    cool_off = timedelta(seconds=lockout_seconds())
    recent = AccessAttempt.objects.filter(attempt_time__gte=now - cool_off)
    limit = int(settings.AXES_FAILURE_LIMIT)
    locks: list[Lockout] = []
    kinds: tuple[tuple[Kind, str], ...] = (("account", "username"), ("address", "ip_address"))
    for kind, field in kinds:
        rows = (
            recent.exclude(**{f"{field}__isnull": True})
            .values(field)
            .annotate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
            .filter(failures__gte=limit)
        )
        locks.extend(
            Lockout(
                kind=kind, value=row[field], failures=row["failures"], until=row["last"] + cool_off
            )
            for row in rows
        )
    return sorted(locks, key=lambda lock: lock.until, reverse=True)


def unlock(
    *,
    username: str | None = None,
    address: str | None = None,
    actor: User | AnonymousUser | None,
    ip: str | None = None,
) -> int:
    """Forget the failed logins of an account or an address, which lifts its lock at once.
    Returns how many attempt records went; audited when there were any."""
    username = normalised_username(username)
    if not username and not address:
        raise ValueError("unlock() needs an account or an address")
    with transaction.atomic():
        cleared = reset_attempts(username=username or None, ip=address or None)
        if cleared:
            audit.record(
                actor=actor,
                action="login.unlocked",
                target_type="login",
                details={"username": username or "", "address": address or "", "records": cleared},
                ip=ip,
            )
    return int(cleared)
