"""URLs of the API (mounted at api/v1/) and of the profile page where people manage tokens."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path, re_path

from api import views
from api.errors import answer
from api.v1 import api

_patterns, _app_name, namespace = api.urls
# Scripts authenticate with a token, not a session, so the site-wide login requirement does
# not apply; the schema is public too. Only the docs page (a person's page) asks to log in.
for _pattern in _patterns:
    if isinstance(_pattern, URLPattern) and _pattern.name != "openapi-view":
        _pattern.callback.login_required = False  # type: ignore[attr-defined]


@login_not_required
def not_found(request: HttpRequest, rest: str) -> HttpResponse:
    """Unknown API paths answer JSON too, and without the slash-appending redirect."""
    return answer(404, f"No API endpoint at /api/v1/{rest}; see /api/v1/docs.")


api_patterns: list[URLPattern | URLResolver] = [
    *_patterns,
    re_path(r"^(?P<rest>.*)$", not_found),
]
# include() takes (patterns, app_name); ninja reverses its own views as "api_v1:...".
api_urls = (api_patterns, namespace)

profile_urls = [
    path("", views.profile, name="profile"),
    path("tokens/<int:pk>/revoke", views.revoke_token, name="revoke_api_token"),
]
