"""One download of a pulled Amplitude cohort: request, poll, file, replace the members.

The pending export's request id is committed before polling, so an attempt that times out
polls the same export next time instead of spending another of the month's ~500 requests
(docs/partners/amplitude.md §3, §5). The file goes to a temporary file as it arrives, then is
read back as a stream and applied in ONE transaction through `cohorts.membership`, together
with the import-log row and the pull's outcome: a sync sees the members before or after, never
half, and a failed or bad download leaves the cohort's last good members untouched.
"""

import io
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import reset_queries, transaction
from django.db.models import Q
from django.utils import timezone

from cohorts.inbound.service import log_request
from cohorts.membership import ChangeCounts, Identity, replace_members
from cohorts.models import AmplitudeDownloadRequest, AmplitudePull
from cohorts.pulls.parse import BadFile, FileCounts, read_members
from cohorts.queue import PULL_JOB_TIMEOUT
from connections import crypto
from connections.models import ImportKey
from connections.partners.amplitude.download import download_file, export_ready, request_export
from connections.partners.amplitude.partner import Amplitude
from connections.partners.http import PartnerError
from connections.services import record_refused_credentials

logger = logging.getLogger(__name__)

PARTNER = ImportKey.Partner.AMPLITUDE.value
ENDPOINT = "download"
Status = AmplitudePull.Status
Cadence = AmplitudePull.Cadence
PERIODS = {Cadence.HOURLY: timedelta(hours=1), Cadence.DAILY: timedelta(days=1)}
# Polling one export: 2 s, doubling up to a minute between polls, 15 minutes in all; then the
# attempt fails and the next one polls the same export again.
POLL_FIRST_DELAY = 2.0
POLL_MAX_DELAY = 60.0
POLL_BUDGET_SECONDS = 15 * 60
# Amplitude keeps the /file URL for 7 days: an older request id is not polled again.
REQUEST_KEPT = timedelta(days=6)
# After a failure: 5 min, doubling, never later than the cadence's next tick; a "once" pull
# gives up after this many failures in a row (it can be started again).
RETRY_FIRST = timedelta(minutes=5)
ONCE_ATTEMPTS = 6
INTERNAL_ERROR = "The download stopped on an unexpected error; the cohort kept its members."


class PullFailed(Exception):
    """`auth`: Amplitude refused the keys, so the connection needs attention too."""

    def __init__(
        self, message: str, *, status: int = 0, keep_request: bool = False, auth: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.keep_request = keep_request
        self.auth = auth


def run_pull(pull_id: int, *, sleep: Callable[[float], None] = time.sleep) -> AmplitudePull | None:
    """Download and apply one pull; None if it is gone or another worker is running it."""
    if not _claim(pull_id):
        return None
    pull = AmplitudePull.objects.select_related("connection", "cohort").get(pk=pull_id)
    try:
        _download_and_apply(pull, sleep)
    except PullFailed as exc:
        _fail(pull, exc)
    except Exception:
        _fail(pull, PullFailed(INTERNAL_ERROR))
        raise
    pull.refresh_from_db()
    return pull


def _claim(pull_id: int) -> bool:
    """Compare-and-set: running, unless a live worker runs it (a dead one's claim expires)."""
    now = timezone.now()
    stale = now - timedelta(seconds=PULL_JOB_TIMEOUT)
    return (
        AmplitudePull.objects.filter(pk=pull_id)
        .filter(~Q(status=Status.RUNNING) | Q(started_at__lt=stale) | Q(started_at=None))
        .update(status=Status.RUNNING, started_at=now, last_attempt_at=now)
        == 1
    )


def _adapter(pull: AmplitudePull) -> Amplitude:
    connection = pull.connection
    try:
        adapter = connection.partner(
            connection.get_config(), crypto.decrypt(connection.encrypted_secret)
        )
        if not isinstance(adapter, Amplitude):
            raise PullFailed(f"{connection.name} is not an Amplitude source.")
        adapter.basic_auth()  # the packed keys read now, not halfway through the download
    except (ValueError, crypto.CredentialError) as exc:
        raise PullFailed(f"The source's settings cannot be used: {exc}") from None
    return adapter


def _download_and_apply(pull: AmplitudePull, sleep: Callable[[float], None]) -> None:
    adapter = _adapter(pull)
    request_id = _pending_request(pull, adapter)
    _wait_until_ready(adapter, request_id, sleep)
    with tempfile.TemporaryFile("w+b") as raw:
        try:
            download_file(adapter, request_id, raw)
        except PartnerError as exc:
            # The /file URL lasts 7 days: the next attempt downloads the same export.
            raise PullFailed(exc.message, status=exc.status or 0, keep_request=True) from None
        raw.seek(0)
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        counts = FileCounts()
        try:
            with transaction.atomic():
                changes = replace_members(pull.cohort_id, _forgetting(read_members(text, counts)))
                _succeed(pull, changes, counts)
        except BadFile as exc:
            raise PullFailed(f"{exc} Nothing was applied.", status=200) from None


def _forgetting(chunks: Iterator[list[Identity]]) -> Iterator[list[Identity]]:
    """The chunks as they come; with DEBUG on, Django keeps every statement in memory and a
    worker has no request to clear them, so a million members would grow it by the file."""
    for chunk in chunks:
        if settings.DEBUG:
            reset_queries()
        yield chunk


def _pending_request(pull: AmplitudePull, adapter: Amplitude) -> str:
    """The export to poll: the one an earlier attempt requested, or a new one (step 1, which
    the monthly quota counts: logged in AmplitudeDownloadRequest as soon as it is made)."""
    kept = pull.requested_at and pull.requested_at > timezone.now() - REQUEST_KEPT
    if pull.request_id and kept:
        return pull.request_id
    try:
        request_id = request_export(adapter, pull.amplitude_cohort_id)
    except PartnerError as exc:
        raise PullFailed(exc.message, status=exc.status or 0, auth=exc.auth) from None
    now = timezone.now()
    with transaction.atomic():
        AmplitudeDownloadRequest.objects.create(
            connection_id=pull.connection_id, pull=pull, request_id=request_id, requested_at=now
        )
        AmplitudePull.objects.filter(pk=pull.pk).update(request_id=request_id, requested_at=now)
    return request_id


def _wait_until_ready(adapter: Amplitude, request_id: str, sleep: Callable[[float], None]) -> None:
    delay, waited = POLL_FIRST_DELAY, 0.0
    while True:
        try:
            if export_ready(adapter, request_id):
                return
        except PartnerError as exc:
            # A failed job must be requested again; a 429 or an outage is polled again later.
            keep = exc.status == 429 or exc.unreachable
            message = exc.message if keep else f"Amplitude's export failed: {exc.message}"
            raise PullFailed(
                message, status=exc.status or 0, keep_request=keep, auth=exc.auth
            ) from None
        if waited >= POLL_BUDGET_SECONDS:
            minutes = POLL_BUDGET_SECONDS // 60
            raise PullFailed(
                f"Amplitude had not finished the export after {minutes} minutes; it is polled "
                "again at the next attempt.",
                status=202,
                keep_request=True,
            )
        sleep(delay)
        waited += delay
        delay = min(delay * 2, POLL_MAX_DELAY)


def _succeed(pull: AmplitudePull, changes: ChangeCounts, counts: FileCounts) -> None:
    """Inside the transaction that replaced the members."""
    now = timezone.now()
    period = PERIODS.get(Cadence(_cadence_now(pull)))
    log_request(
        key=None,
        partner=PARTNER,
        endpoint=ENDPOINT,
        cohort_pk=pull.cohort_id,
        cohort_id=pull.amplitude_cohort_id,
        http_status=200,
        # Unchanged members and rows without a user_id changed nothing.
        counts=ChangeCounts(
            added=changes.added,
            removed=changes.removed,
            ignored=counts.rows - changes.added,
        ),
        ip=None,
    )
    AmplitudePull.objects.filter(pk=pull.pk).update(
        status=Status.SUCCEEDED,
        request_id="",
        requested_at=None,
        failures=0,
        last_error="",
        last_success_at=now,
        last_rows=counts.rows,
        last_skipped=counts.skipped,
        next_run_at=now + period if period else None,
    )


def _cadence_now(pull: AmplitudePull) -> str:
    """The cadence as it is now: someone may have changed it while the download ran."""
    current = AmplitudePull.objects.filter(pk=pull.pk).values_list("cadence", flat=True).first()
    return current or pull.cadence


def _fail(pull: AmplitudePull, exc: PullFailed) -> None:
    """Recorded on the pull and in the cohort's import log; the members stay as they were."""
    now = timezone.now()
    failures = pull.failures + 1
    cadence = _cadence_now(pull)
    next_run_at: datetime | None = now + min(
        RETRY_FIRST * 2 ** (failures - 1), PERIODS.get(Cadence(cadence), timedelta(days=1))
    )
    if cadence == Cadence.ONCE and failures >= ONCE_ATTEMPTS:
        next_run_at = None
    logger.warning("Amplitude pull %s failed: %s", pull.pk, exc.message)
    if exc.auth:
        record_refused_credentials(connection_id=pull.connection_id, message=exc.message)
    with transaction.atomic():
        log_request(
            key=None,
            partner=PARTNER,
            endpoint=ENDPOINT,
            cohort_pk=pull.cohort_id,
            cohort_id=pull.amplitude_cohort_id,
            http_status=exc.status,
            error=exc.message,
            ip=None,
        )
        updates: dict[str, object] = {}
        if not exc.keep_request:
            updates = {"request_id": "", "requested_at": None}
        AmplitudePull.objects.filter(pk=pull.pk).update(
            status=Status.FAILED,
            failures=failures,
            last_error=exc.message,
            next_run_at=next_run_at,
            **updates,
        )
