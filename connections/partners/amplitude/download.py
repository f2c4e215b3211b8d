"""Amplitude's Behavioral Cohorts download: request an export, poll it, fetch its file
(docs/partners/amplitude.md §3-§5).

The file may come inline or as a 302 to a pre-signed storage link valid about a minute. The
link is followed by a second call through the egress policy (http.stream checks it like any
call) WITHOUT the Basic credentials, which belong to Amplitude alone; an expired link is
replaced by calling /file again once, which costs no quota (only step 1 counts).
"""

from typing import IO
from urllib.parse import quote, urlencode, urlsplit

import requests
import urllib3

from connections.partners.amplitude.partner import Amplitude
from connections.partners.http import PartnerError, call, stream

REQUEST_PATH = "/api/5/cohorts/request/{}"
STATUS_PATH = "/api/5/cohorts/request-status/{}"
FILE_PATH = "/api/5/cohorts/request/{}/file"
COMPLETED = "JOB COMPLETED"
# Reading the file: a download of a large cohort takes a while, but a stalled one must end.
FILE_TIMEOUT = (5.0, 120.0)
COPY_BYTES = 64 * 1024


def request_export(adapter: Amplitude, cohort_id: str) -> str:
    """Step 1 (counts against the month's quota): the request id to poll. The file carries the
    users' properties (props=1): members keep them, and trait syncs send them on."""
    authorization, secret = adapter.basic_auth()
    query = urlencode({"props": 1})
    url = f"{adapter.config.base_url}{REQUEST_PATH.format(quote(cohort_id, safe=''))}?{query}"
    response = call("GET", url, secret=secret, authorization=authorization)
    request_id = response.body.get("request_id") if isinstance(response.body, dict) else None
    if not isinstance(request_id, str) or not request_id:
        raise PartnerError(
            "Amplitude accepted the export request but gave no request id.",
            status=response.status,
        )
    return request_id


def export_ready(adapter: Amplitude, request_id: str) -> bool:
    """Step 2: True once the export is complete, False while it runs. Any other answer is a
    failed export (its status string is undocumented), raised as a PartnerError."""
    authorization, secret = adapter.basic_auth()
    url = f"{adapter.config.base_url}{STATUS_PATH.format(quote(request_id, safe=''))}"
    response = call("GET", url, secret=secret, authorization=authorization)
    status = response.body.get("async_status") if isinstance(response.body, dict) else None
    if response.status == 202:
        return False
    if response.status == 200 and status == COMPLETED:
        return True
    raise PartnerError(
        f"Amplitude's export ended as {status or 'an unknown status'}.", status=response.status
    )


def download_file(adapter: Amplitude, request_id: str, into: IO[bytes]) -> int:
    """Step 3: write the file into `into` as it arrives; returns its size in bytes."""
    authorization, secret = adapter.basic_auth()
    url = f"{adapter.config.base_url}{FILE_PATH.format(quote(request_id, safe=''))}"
    for attempt in (1, 2):
        with stream(url, secret=secret, authorization=authorization) as answer:
            if answer.status < 300:
                return _copy(answer.raw, into, urlsplit(url).netloc)
            link = answer.location
        if not link or not urlsplit(link).scheme:
            raise PartnerError("Amplitude redirected the download nowhere usable.")
        try:
            # No credentials: the storage host is not Amplitude's API.
            with stream(link, secret=secret, authorization=None, timeout=FILE_TIMEOUT) as file:
                if file.status >= 300:
                    raise PartnerError("The storage link redirected again; not followed.")
                into.seek(0)
                into.truncate()
                return _copy(file.raw, into, urlsplit(link).netloc)
        except PartnerError as exc:
            # A pre-signed link lives about a minute: an expired one (S3 answers 403) is
            # replaced by asking /file again, once.
            expired = exc.status is not None and 400 <= exc.status < 500
            if attempt == 2 or not expired:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _copy(raw: IO[bytes], into: IO[bytes], host: str) -> int:
    size = 0
    try:
        while chunk := raw.read(COPY_BYTES):
            into.write(chunk)
            size += len(chunk)
    except (OSError, urllib3.exceptions.HTTPError, requests.RequestException) as exc:
        raise PartnerError(
            f"The download from {host} broke off ({type(exc).__name__}).", retryable=True
        ) from None
    into.flush()
    return size
