"""Placeholder until this module is written: every view answers 404."""

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse


def cohort_list(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404


def cohort_create(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404


def cohort_detail(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404


def cohort_edit(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404


def cohort_delete(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404


def cohort_members(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404


def cohort_change_members(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404
