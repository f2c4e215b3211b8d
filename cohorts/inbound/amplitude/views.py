"""Amplitude's Cohort Webhooks destination: POST /partners/amplitude/webhook.

Amplitude cannot send a key in the body, so the data-import key comes as one of its custom
headers, `Authorization: Bearer <key>`. The answer is 200 once the batch is stored (Amplitude
retries anything slower than 1-2 s); a job applies it just after. Refusals are the Braze-
compatible API's: JSON `{"message": ...}`, 401 for a missing, unknown, revoked or expired key
(nothing applied), 413 past the body limit, 429 past the key's hourly limit, 400 for a bad
batch. One refused before it showed a genuine key is counted, every other one logged.
"""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from cohorts.inbound import refusals
from cohorts.inbound import schema as inbound_schema
from cohorts.inbound import service as inbound_service
from cohorts.inbound.amplitude import schema
from cohorts.inbound.amplitude.service import ENDPOINT, PARTNER, accept_batch
from cohorts.inbound.schema import PayloadError
from cohorts.inbound.service import ImportRefused, RateWindow
from cohorts.inbound.views import read_body
from cohorts.models import RefusedImportCount
from connections.models import ImportKey
from core.audit import client_ip

Reason = RefusedImportCount.Reason


def _answer(status: int, message: str) -> JsonResponse:
    return JsonResponse({"message": message}, status=status)


def _bearer(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ImportRefused(401, schema.NO_KEY)
    return token.strip()


def _reason(message: str) -> str:
    return {
        schema.NO_KEY: Reason.NO_KEY,
        inbound_service.INVALID_SECRET: Reason.UNKNOWN_KEY,
        schema.BODY_TOO_LARGE: Reason.TOO_LARGE,
    }.get(message, Reason.OTHER)


@csrf_exempt
@login_not_required
def receive_batch(request: HttpRequest) -> HttpResponse:
    """Store one batch of users who entered or left an Amplitude cohort."""
    if request.method != "POST":
        response = _answer(405, "Method not allowed: use POST")
        response["Allow"] = "POST"
        return response
    ip = client_ip(request)
    key: ImportKey | None = None
    payload = None
    window: RateWindow | None = None
    try:
        body = read_body(request, schema.MAX_BODY_BYTES, schema.BODY_TOO_LARGE)
        key = inbound_service.authenticate(raw_key=_bearer(request), partner=PARTNER, ip=ip)
        window = inbound_service.count_request(key_id=key.pk)
        if window is not None and window.exceeded:
            raise ImportRefused(429, inbound_service.RATE_LIMITED)
        payload = inbound_schema.json_object(body)
        if payload is None:
            raise PayloadError(schema.NOT_AN_OBJECT)
        new = accept_batch(key=key, batch=schema.parse_batch(payload), ip=ip)
        response = _answer(200, "accepted" if new else "already received")
    except (PayloadError, ImportRefused) as refusal:
        status = refusal.status if isinstance(refusal, ImportRefused) else 400
        shown_key = refusal.key if isinstance(refusal, ImportRefused) and refusal.key else key
        if shown_key is None:
            # No genuine key: anyone can send these, so they are counted, not logged one by one.
            refusals.count_refusal(partner=PARTNER, reason=_reason(refusal.message))
        else:
            inbound_service.record_rejection(
                key=shown_key,
                partner=PARTNER,
                endpoint=ENDPOINT,
                cohort_id=schema.loggable_cohort_id(payload),
                http_status=status,
                error=refusal.message,
                ip=ip,
            )
        response = _answer(status, refusal.message)
    for name, value in (window.headers() if window else {}).items():
        response[name] = value
    return response
