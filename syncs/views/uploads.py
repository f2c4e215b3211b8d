"""Placeholder until this module is written: every view answers 404."""

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse


def upload_create(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404


def upload_detail(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404


def upload_progress(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404


def upload_bad_rows(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404
