"""The Braze-compatible cohort-import API: POST /partners/<partner>/cohorts[/users].

Partners authenticate with a data-import key, not a session, so these views are exempt from CSRF
and from the login requirement. Every answer is JSON `{"message": ...}` with Braze's status codes;
a 429 says when to come back in `Retry-After` (seconds). A request refused before it showed a
genuine key is counted (cohorts.inbound.refusals), every other one logged as an ImportRequest.
"""

from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from cohorts.inbound import refusals
from cohorts.inbound import schema as inbound_schema
from cohorts.inbound import service as inbound_service
from cohorts.inbound.schema import MAX_BODY_BYTES, PayloadError
from cohorts.inbound.service import ImportRefused, RateWindow
from connections.models import ImportKey
from core.audit import client_ip

# Applies a parsed-enough request: (key, partner, payload, ip). Raises PayloadError/ImportRefused.
Apply = Callable[[ImportKey, str, dict[str, Any], str | None], None]


def _answer(status: int, message: str) -> JsonResponse:
    return JsonResponse({"message": message}, status=status)


def read_body(
    request: HttpRequest,
    limit: int = MAX_BODY_BYTES,
    too_large: str = inbound_schema.BODY_TOO_LARGE,
) -> bytes:
    """The body, refused with 413 past `limit` bytes without reading more than one byte over."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise ImportRefused(413, too_large)
    stream: Any = request
    if not declared and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Django reads no body without a Content-Length; a chunked one is in the WSGI input
        # (the server removes the chunking), and only the bounded read keeps it in check.
        stream = request.META["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise ImportRefused(413, too_large)
    return b"".join(chunks)


def _authenticate(
    request: HttpRequest, partner: str, payload: dict[str, Any] | None, ip: str | None
) -> ImportKey:
    raw_key = inbound_schema.client_secret(payload, request.headers.get("Authorization"))
    if raw_key is None:
        raise PayloadError(
            inbound_schema.BAD_CLIENT_SECRET
            if payload is not None
            else inbound_schema.NOT_AN_OBJECT
        )
    return inbound_service.authenticate(raw_key=raw_key, partner=partner, ip=ip)


def _handle(request: HttpRequest, partner: str, endpoint: str, apply: Apply) -> HttpResponse:
    if request.method != "POST":
        response = _answer(405, "Method not allowed: use POST")
        response["Allow"] = "POST"
        return response
    if partner not in ImportKey.Partner.values:
        return _answer(404, "Unknown partner")
    ip = client_ip(request)
    key: ImportKey | None = None
    payload: dict[str, Any] | None = None
    window: RateWindow | None = None
    try:
        payload = inbound_schema.json_object(read_body(request))
        key = _authenticate(request, partner, payload, ip)
        window = inbound_service.count_request(key_id=key.pk)
        if window is not None and window.exceeded:
            raise ImportRefused(429, inbound_service.RATE_LIMITED)
        if payload is None:
            raise PayloadError(inbound_schema.NOT_AN_OBJECT)
        apply(key, partner, payload, ip)
        response = _answer(201, "success")
    except (PayloadError, ImportRefused) as refusal:
        status = refusal.status if isinstance(refusal, ImportRefused) else 400
        shown_key = refusal.key if isinstance(refusal, ImportRefused) and refusal.key else key
        if shown_key is None:
            # No genuine key: anyone can send these, so they are counted, not logged one by one.
            refusals.count_refusal(partner=partner, reason=refusals.reason_for(refusal.message))
        else:
            inbound_service.record_rejection(
                key=shown_key,
                partner=partner,
                endpoint=endpoint,
                cohort_id=inbound_schema.loggable_cohort_id(payload),
                http_status=status,
                error=refusal.message,
                ip=ip,
            )
        response = _answer(status, refusal.message)
    for name, value in (window.headers() if window else {}).items():
        response[name] = value
    return response


def _upsert(key: ImportKey, partner: str, payload: dict[str, Any], ip: str | None) -> None:
    upsert = inbound_schema.parse_cohort_upsert(payload)
    inbound_service.upsert_partner_cohort(key=key, partner=partner, upsert=upsert, ip=ip)


def _change_users(key: ImportKey, partner: str, payload: dict[str, Any], ip: str | None) -> None:
    change = inbound_schema.parse_users_change(payload)
    inbound_service.apply_users_change(key=key, partner=partner, change=change, ip=ip)


@csrf_exempt
@login_not_required
def upsert_cohort(request: HttpRequest, partner: str) -> HttpResponse:
    """Create the partner's cohort, or rename it."""
    return _handle(request, partner, inbound_service.ENDPOINT_COHORTS, _upsert)


@csrf_exempt
@login_not_required
def change_cohort_users(request: HttpRequest, partner: str) -> HttpResponse:
    """Add and remove members of the partner's cohort."""
    return _handle(request, partner, inbound_service.ENDPOINT_USERS, _change_users)
