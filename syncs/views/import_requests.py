"""Placeholder until this module is written: every view answers 404."""

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse


def import_request_list(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404
