"""Every refusal the API makes is JSON `{"message": ..., "errors": {field: [...]}}`.

Status codes: 400 for input a service refused (django's ValidationError), 401 without a valid
token, 403 for a role without the permission, 404 for what does not exist (or, as on the
dashboard, for a user with no role), 422 for a request that does not fit the schema. Anything
unexpected is logged and answered 500 in JSON, without details.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as RefusedInput
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja import errors as ninja_errors

logger = logging.getLogger(__name__)

WWW_AUTHENTICATE = 'Bearer realm="cohortsync"'


def answer(status: int, message: str, errors: dict[str, list[str]] | None = None) -> JsonResponse:
    return JsonResponse({"message": message, "errors": errors or {}}, status=status)


def _refused(request: HttpRequest, exc: RefusedInput) -> HttpResponse:
    errors = exc.message_dict if hasattr(exc, "error_dict") else {}
    return answer(400, " ".join(exc.messages), errors)


def _location(loc: Any) -> str:
    # ("body", "payload", "cadence", "kind") -> "cadence.kind"; ("query", "limit") -> "limit"
    parts = [str(part) for part in loc[1:] if part != "payload"] if len(loc) > 1 else []
    return ".".join(parts) or str(loc[0] if loc else "body")


def _invalid(request: HttpRequest, exc: ninja_errors.ValidationError) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        errors.setdefault(_location(error.get("loc", ())), []).append(message)
    summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
    return answer(422, f"The request is not valid. {summary}", errors)


def _unauthorized(request: HttpRequest, exc: ninja_errors.AuthenticationError) -> HttpResponse:
    response = answer(401, exc.message)
    response["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


def _http_error(request: HttpRequest, exc: ninja_errors.HttpError) -> HttpResponse:
    return answer(exc.status_code, exc.message)


def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return answer(403, str(exc) or "Your role does not allow this.")


def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return answer(404, str(exc) or "Not found.")


def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("API error on %s %s", request.method, request.path)
    return answer(500, "Something went wrong on the server; it has been logged.")


# Looked up along each exception's class hierarchy, most specific first.
HANDLERS: dict[type[Exception], Callable[..., HttpResponse]] = {
    Exception: _unexpected,
    ninja_errors.HttpError: _http_error,
    ninja_errors.AuthenticationError: _unauthorized,
    ninja_errors.ValidationError: _invalid,
    RefusedInput: _refused,
    PermissionDenied: _forbidden,
    Http404: _not_found,
}


def install_error_handlers(api: NinjaAPI) -> None:
    for exception_class, handler in HANDLERS.items():
        api.add_exception_handler(exception_class, handler)
