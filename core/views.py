from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET, require_POST

from core import login_throttle
from core.audit import client_ip
from core.forms import AuditFilterForm
from core.models import AuditEntry
from core.roles import request_actor, role_required

UNLOCK_LOGINS = "core.unlock_logins"


@role_required("core.view_auditentry")
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    entries = AuditEntry.objects.all()
    if form.is_valid():
        entries = form.apply(entries)
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "core/audit_log.html",
        {"form": form, "page": page, "query": query.urlencode()},
    )


@role_required(UNLOCK_LOGINS)
@require_GET
def login_lockouts(request: HttpRequest) -> HttpResponse:
    """The accounts and addresses locked out of logging in now, each with an Unlock button."""
    return render(
        request,
        "core/login_lockouts.html",
        {
            "lockouts": login_throttle.current_lockouts(),
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "minutes": login_throttle.lockout_minutes(),
        },
    )


@role_required(UNLOCK_LOGINS)
@require_POST
def login_unlock(request: HttpRequest) -> HttpResponse:
    kind, value = request.POST.get("kind"), (request.POST.get("value") or "").strip()
    if kind not in {"account", "address"} or not value:
        messages.error(request, "Choose a lock to lift.")
        return redirect("login_lockouts")
    cleared = login_throttle.unlock(
        username=value if kind == "account" else None,
        address=value if kind == "address" else None,
        actor=request_actor(request),
        ip=client_ip(request),
    )
    if cleared:
        messages.success(request, f"Unlocked {value}: it may log in again.")
    else:
        messages.info(request, f"{value} had no failed logins left to forget.")
    return redirect("login_lockouts")


@login_not_required
@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever a page links (the API's JSON, the admin): send them
    to the icon every page links, rather than to a 404."""
    response = redirect(static("favicon.svg"))
    patch_cache_control(response, max_age=86400)
    return response
