"""Amplitude simulator: the cohort list and the Behavioral Cohorts download (request, poll,
file, and the short-lived storage link a large file redirects to), behind HTTP Basic auth with
the project's API key and secret key (docs/partners/amplitude.md §1-§5, §12).

Knobs and seeds are set through the sandbox control API (`/_sandbox/amplitude/...`): polls
answered 202 before the job completes, jobs that fail, the largest file answered inline, the
monthly quota and the status it answers once used up."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import secrets
import time
from collections.abc import Mapping
from urllib.parse import parse_qs

from connections.sandbox.state import AmplitudeExport, AmplitudeLink, JsonDict, SandboxState

Response = tuple[int, dict[str, str], JsonDict | bytes]

COHORTS_PATH = "/api/3/cohorts"
REQUEST_PREFIX = "/api/5/cohorts/request/"
STATUS_PREFIX = "/api/5/cohorts/request-status/"
FILE_SUFFIX = "/file"
# Where the simulator's "S3" serves pre-signed links (no Basic auth there, as on S3).
STORAGE_PREFIX = "/amplitude-storage/"
FIXED_COLUMNS = ("amplitude_id", "user_id")
# A member's identity, never one of its properties (even when a test drops a fixed column).
IDENTITY_KEYS = frozenset({"amplitude_id", "user_id"})


def owns(path: str) -> bool:
    return (
        path == COHORTS_PATH
        or path.startswith((REQUEST_PREFIX, STATUS_PREFIX))
        or path.startswith(STORAGE_PREFIX)
    )


def _credentials(authorization: str) -> tuple[str, str] | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    api_key, colon, secret_key = decoded.partition(":")
    return (api_key, secret_key) if colon else None


def handle(
    state: SandboxState, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> Response:
    if method != "GET":
        return 405, {"Allow": "GET"}, {"error": "Method Not Allowed"}
    if path.startswith(STORAGE_PREFIX):
        return _storage(state, path[len(STORAGE_PREFIX) :], headers)
    credentials = _credentials(headers.get("authorization", ""))
    with state.lock:
        if credentials is None or credentials not in state.amplitude_keys:
            return 401, {}, {"error": "Invalid API key or secret key"}
        if path == COHORTS_PATH:
            return 200, {}, {"cohorts": [dict(cohort) for cohort in state.amplitude_cohorts]}
        if path.startswith(STATUS_PREFIX):
            return _status(state, path[len(STATUS_PREFIX) :])
        rest = path[len(REQUEST_PREFIX) :]
        if rest.endswith(FILE_SUFFIX):
            return _file(state, rest[: -len(FILE_SUFFIX)], headers)
        return _request(state, credentials[0], rest, headers)


def _query(headers: Mapping[str, str]) -> dict[str, list[str]]:
    # The sandbox server passes the query string as the pseudo-header ":query".
    return parse_qs(headers.get(":query", ""))


def _request(
    state: SandboxState, api_key: str, cohort_id: str, headers: Mapping[str, str]
) -> Response:
    """Step 1: counted against the month's quota, then a job that completes after N polls."""
    if cohort_id not in state.amplitude_members or "/" in cohort_id:
        return 404, {}, {"error": f"Cohort {cohort_id} not found"}
    month = f"{api_key} {time.strftime('%Y-%m', time.gmtime())}"
    used = state.amplitude_downloads.get(month, 0)
    if used >= state.amplitude_monthly_quota:
        return state.amplitude_quota_status, {}, {"error": "Monthly cohort download quota used"}
    state.amplitude_downloads[month] = used + 1
    query = _query(headers)
    props = query.get("props", ["0"])[0] == "1"
    keys = tuple(query.get("propKeys", []))
    request_id = f"req-{state.next_amplitude_request:06d}"
    state.next_amplitude_request += 1
    fails = state.amplitude_fail_jobs > 0
    if fails:
        state.amplitude_fail_jobs -= 1
    state.amplitude_exports[request_id] = AmplitudeExport(
        cohort_id=cohort_id,
        prop_keys=keys if props else None,
        polls_left=state.amplitude_polls,
        fails=fails,
    )
    return 202, {}, {"request_id": request_id, "cohort_id": cohort_id}


def _status(state: SandboxState, request_id: str) -> Response:
    export = state.amplitude_exports.get(request_id)
    if export is None:
        return 404, {}, {"error": f"Request {request_id} not found"}
    if export.polls_left > 0:
        export.polls_left -= 1
        return 202, {}, {"request_id": request_id, "async_status": "JOB INPROGRESS"}
    if export.fails:
        # The real failure string is undocumented (docs/partners/amplitude.md §13): any answer
        # other than 200 or 202 is a failure to cohortsync.
        return 500, {}, {"request_id": request_id, "async_status": "JOB FAILED"}
    _csv(state, export)  # the job writes its file before it says it completed
    return 200, {}, {"request_id": request_id, "async_status": "JOB COMPLETED"}


def _file(state: SandboxState, request_id: str, headers: Mapping[str, str]) -> Response:
    export = state.amplitude_exports.get(request_id)
    if export is None:
        return 404, {}, {"error": f"Request {request_id} not found"}
    if export.polls_left > 0 or export.fails:
        return 400, {}, {"error": "The export is not ready"}
    data = _csv(state, export)
    if len(data) <= state.amplitude_inline_bytes:
        return 200, {"Content-Type": "text/csv"}, data
    # A fresh pre-signed link on every call; each lives a minute (or until expired by hand).
    token = secrets.token_urlsafe(12)
    state.amplitude_links[token] = AmplitudeLink(
        request_id, time.monotonic() + state.amplitude_link_seconds
    )
    # An absolute URL, as S3's are: on the sandbox's own address, which the Host header names.
    location = f"http://{headers.get('host', '127.0.0.1')}{STORAGE_PREFIX}{token}"
    return 302, {"Location": location}, {}


def _storage(state: SandboxState, token: str, headers: Mapping[str, str]) -> Response:
    with state.lock:
        if "authorization" in headers:
            state.amplitude_storage_auth.append(headers["authorization"])
        link = state.amplitude_links.get(token)
        if link is None or link.expired or time.monotonic() >= link.expires_at:
            # As S3 answers an expired pre-signed URL.
            return 403, {}, {"error": "Request has expired"}
        export = state.amplitude_exports[link.request_id]
        return 200, {"Content-Type": "text/csv"}, _csv(state, export)


def _csv(state: SandboxState, export: AmplitudeExport) -> bytes:
    """The export's file, made on first use and kept: the members as they were then."""
    if export.data is None:
        export.data = _render(state, export)
    return export.data


def _render(state: SandboxState, export: AmplitudeExport) -> bytes:
    members = state.amplitude_members.get(export.cohort_id, [])
    if export.prop_keys is None:
        extra: list[str] = []
    elif export.prop_keys:
        extra = list(export.prop_keys)
    else:
        extra = sorted({k for m in members for k in m} - set(FIXED_COLUMNS) - IDENTITY_KEYS)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FIXED_COLUMNS, *extra])
    for member in members:
        writer.writerow([member.get(column, "") for column in (*FIXED_COLUMNS, *extra)])
    return out.getvalue().encode()
