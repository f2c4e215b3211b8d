"""Data-import key pages (admin only): list, generate, detail, revoke, rotate."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods

from connections import keys
from connections.key_endpoints import endpoints_for
from connections.key_forms import ImportKeyForm, RotateForm
from connections.models import ImportKey
from core.audit import client_ip
from core.models import AuditEntry
from core.roles import role_required

MANAGE = "connections.manage_import_keys"


def _show_once(
    request: HttpRequest, key: ImportKey, raw_key: str, old_key: ImportKey | None = None
) -> HttpResponse:
    """The one page that ever shows a raw key. Rendered, not redirected to, and never cached."""
    response = render(
        request,
        "connections/keys/created.html",
        {"key": key, "raw_key": raw_key, "old_key": old_key, "endpoints": endpoints_for(key)},
    )
    add_never_cache_headers(response)
    return response


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


@role_required(MANAGE)
@require_GET
def key_list(request: HttpRequest) -> HttpResponse:
    import_keys = ImportKey.objects.select_related("created_by")
    return render(request, "connections/keys/list.html", {"keys": import_keys})


@role_required(MANAGE)
@require_http_methods(["GET", "POST"])
def key_create(request: HttpRequest) -> HttpResponse:
    form = ImportKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            key, raw_key = keys.generate_import_key(
                partner=form.cleaned_data["partner"],
                name=form.cleaned_data["name"],
                expires_at=form.expires_at(),
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return _show_once(request, key, raw_key)
    return render(request, "connections/keys/form.html", {"form": form})


@role_required(MANAGE)
@require_GET
def key_detail(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(
        ImportKey.objects.select_related("created_by", "revoked_by", "replaced_by"), pk=pk
    )
    history = AuditEntry.objects.filter(target_type="importkey", target_id=str(key.pk))
    replaces = ImportKey.objects.filter(replaced_by=key).first()
    return render(
        request,
        "connections/keys/detail.html",
        {
            "key": key,
            "history": history,
            "replaces": replaces,
            "status": key.status(),
            "endpoints": endpoints_for(key),
        },
    )


@role_required(MANAGE)
@require_http_methods(["GET", "POST"])
def key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ImportKey, pk=pk)
    if request.method == "POST":
        try:
            keys.revoke_import_key(key=key, actor=request.user, ip=client_ip(request))
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(
                request, f"Revoked {key.prefix}. Requests using it are refused from now on."
            )
        return redirect("connections:key_detail", pk=key.pk)
    if key.revoked_at is not None:
        messages.info(request, f"The key {key.prefix} is already revoked.")
        return redirect("connections:key_detail", pk=key.pk)
    return render(request, "connections/keys/confirm_revoke.html", {"key": key})


@role_required(MANAGE)
@require_http_methods(["GET", "POST"])
def key_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ImportKey, pk=pk)
    form = RotateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            new_key, raw_key = keys.rotate_import_key(
                key=key, grace=form.grace(), actor=request.user, ip=client_ip(request)
            )
        except ValidationError as error:
            messages.error(request, _error_text(error))
            return redirect("connections:key_detail", pk=key.pk)
        return _show_once(request, new_key, raw_key, old_key=key)
    status = key.status()
    if status != "active":
        reason = "was already rotated" if status == "rotating" else f"is {status}"
        messages.info(request, f"The key {key.prefix} {reason} and cannot be rotated.")
        return redirect("connections:key_detail", pk=key.pk)
    return render(request, "connections/keys/confirm_rotate.html", {"key": key, "form": form})
