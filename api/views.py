"""The profile page: a person's own API tokens, listed, created (shown once) and revoked.

Any role may hold tokens (a viewer's only read); nobody sees or revokes another person's.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from api.forms import ApiTokenForm
from api.models import ApiToken
from api.tokens import create_api_token, revoke_api_token
from core.audit import client_ip
from core.roles import request_actor, role_required


@role_required()
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    user = request_actor(request)
    form = ApiTokenForm(request.POST or None)
    raw_token, created = None, None
    if request.method == "POST" and form.is_valid():
        try:
            created, raw_token = create_api_token(
                user=user, name=form.cleaned_data["name"], actor=user, ip=client_ip(request)
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            form = ApiTokenForm()
    context = {
        "form": form,
        "tokens": ApiToken.objects.filter(user=user),
        "created": created,
        "raw_token": raw_token,
    }
    response = render(request, "api/profile.html", context)
    if raw_token is not None:
        # The one page that ever shows the token: rendered, not redirected to, never cached.
        add_never_cache_headers(response)
    return response


@role_required()
@require_POST
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request_actor(request))
    try:
        revoke_api_token(token=token, actor=request_actor(request), ip=client_ip(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Revoked {token.prefix}. Requests using it are refused now.")
    return redirect("profile")
