"""run_sync: claim a queued run, send the diff in batches, checkpoint every accepted batch.

A checkpoint writes the ledger and the run's counters in one transaction after the partner
accepted the batch, so a run that dies resumes from the ledger: nothing sent twice (beyond the
batch in flight), nothing skipped.
"""

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import django_rq
import requests
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from connections import crypto
from connections.models import Connection
from connections.partners.base import (
    BatchResult,
    BatchTooLarge,
    Partner,
    PartnerError,
    Recipient,
)
from connections.ratelimit import RateLimitTimeout, TokenBucket, connection_bucket_key
from syncs import diff
from syncs.models import CohortMember, Sync, SyncedMember, SyncRun, SyncRunError
from syncs.realtime import start_follow_up
from syncs.run_outcome import finish_run, refuse_connection

logger = logging.getLogger(__name__)

Status = SyncRun.Status
MAX_ATTEMPTS = 6
MAX_BACKOFF_SECONDS = 60.0


class StopRun(Exception):
    """The run cannot go on; `status` is how it ends."""

    def __init__(self, message: str, status: str = Status.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def run_sync(run_id: int, *, sleep: Callable[[float], None] = time.sleep) -> str:
    now = timezone.now()
    claimed = SyncRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=now, heartbeat_at=now
    )
    if not claimed:
        return "not claimed"
    run = SyncRun.objects.select_related("sync__connection", "sync__cohort").get(pk=run_id)
    try:
        RunSender(run, sleep=sleep).execute()
    except StopRun as stop:
        finish_run(run, stop.status, stop.message)
    except Exception:
        logger.exception("Sync run %s crashed", run_id)
        finish_run(run, Status.FAILED, "cohortsync hit an internal error; the run was stopped.")
        raise
    finally:
        start_follow_up(run.sync_id)
    return SyncRun.objects.values_list("status", flat=True).get(pk=run_id)


class RunSender:
    def __init__(self, run: SyncRun, *, sleep: Callable[[float], None]) -> None:
        self.run = run
        self.sync: Sync = run.sync
        self.connection: Connection = run.sync.connection
        self.sleep = sleep
        self.session = requests.Session()
        try:
            secret = crypto.decrypt(self.connection.encrypted_secret)
            self.partner: Partner = self.connection.partner(self.connection.get_config(), secret)
        except (ValueError, crypto.CredentialError) as exc:
            raise StopRun(f"The connection cannot be used: {exc}") from None
        config = self.partner.config
        self.bucket = TokenBucket(
            django_rq.get_connection("default"),
            connection_bucket_key(self.connection.pk),
            capacity=getattr(config, "rate_limit_requests", 100),
            per_seconds=float(getattr(config, "rate_limit_seconds", 1)),
            sleep=sleep,
        )
        self.batch_size = self.partner.max_batch_size()
        # A full resync re-sends every cohort member, whatever the ledger says; removals still
        # come from the ledger, so members who left are removed all the same.
        self.everyone = run.trigger == SyncRun.Trigger.RESYNC
        self.mapping: list[str] = self.sync.identifier_mapping or [
            getattr(config, "default_identifier", "external_id")
        ]

    def execute(self) -> None:
        self._prepare_destination()
        # A run resumed after its worker died keeps the plan it made; a new one makes its own.
        if self.run.interruptions == 0 or not (self.run.planned or self.run.processed):
            self._plan()
        # A resumed run goes on from its checkpointed cursors, within the bounds of its plan.
        after = self.run.add_cursor
        while page := diff.page_to_add(
            self.sync,
            after_id=after,
            until_id=self.run.add_until,
            limit=self.batch_size,
            everyone=self.everyone,
        ):
            after = page[-1].pk
            self._send_adds(page)
        after = self.run.remove_cursor
        while self.sync.leaving_members == Sync.Leaving.REMOVE and (
            rows := diff.page_to_remove(
                self.sync, after_id=after, until_id=self.run.remove_until, limit=self.batch_size
            )
        ):
            after = rows[-1].pk
            self._send_removes(rows)
        self.run.refresh_from_db()
        status = Status.PARTIALLY_FAILED if self.run.failed else Status.SUCCEEDED
        finish_run(self.run, status, "")

    def _prepare_destination(self) -> None:
        """Let the partner make what the sync needs first (AppsFlyer: its audience)."""
        try:
            options = self.partner.prepare_sync(
                cohort_label=self.sync.cohort.name, options=self.sync.options
            )
        except PartnerError as exc:
            if exc.auth:
                refuse_connection(self.connection, exc.message)
            raise StopRun(
                f"{self.partner.label} could not prepare the sync: {exc.message}"
            ) from None
        if options != self.sync.options:
            Sync.objects.filter(pk=self.sync.pk).update(options=options)
            self.sync.options = options

    def _plan(self) -> None:
        to_add = diff.members_to_add(self.sync, everyone=self.everyone)
        add_until = (
            CohortMember.objects.filter(cohort_id=self.sync.cohort_id).aggregate(top=Max("id"))[
                "top"
            ]
            or 0
        )
        adds = to_add.filter(id__lte=add_until).count()
        removes, remove_until = 0, 0
        if self.sync.leaving_members == Sync.Leaving.REMOVE:
            remove_until = (
                SyncedMember.objects.filter(sync_id=self.sync.pk).aggregate(top=Max("id"))["top"]
                or 0
            )
            removes = diff.ledger_to_remove(self.sync).filter(id__lte=remove_until).count()
        plan = {
            "planned_adds": adds,
            "planned_removes": removes,
            "add_until": add_until,
            "remove_until": remove_until,
        }
        SyncRun.objects.filter(pk=self.run.pk).update(**plan)
        for field, value in plan.items():
            setattr(self.run, field, value)
        in_destination = SyncedMember.objects.filter(sync_id=self.sync.pk).count()
        threshold = self.sync.mass_removal_threshold_pct
        # An approved held run is started with trigger resume: the person already said yes.
        guarded = self.run.trigger not in (SyncRun.Trigger.RESYNC, SyncRun.Trigger.RESUME)
        if guarded and in_destination and removes * 100 > threshold * in_destination:
            raise StopRun(
                f"This run would remove {removes:,} of the {in_destination:,} members in the "
                f"destination (more than {threshold} %): approve or reject it.",
                status=Status.HELD,
            )

    def _send_adds(self, page: Sequence[CohortMember]) -> None:
        recipients, skipped = [], []
        for member in page:
            recipient = diff.recipient_for(member, self.mapping)
            if recipient is None:
                skipped.append(member)
            else:
                recipients.append(recipient)
        result = self._send(add=recipients, remove=[]) if recipients else None
        by_ref = {member.pk: member for member in page}
        accepted = set(result.accepted) if result else set()
        with transaction.atomic():
            SyncedMember.objects.bulk_create(
                [
                    SyncedMember(
                        sync_id=self.sync.pk,
                        id_type=by_ref[r.ref].id_type,
                        alias_label=by_ref[r.ref].alias_label,
                        value=by_ref[r.ref].value,
                        dest_type=r.identifier_type,
                        dest_value=r.identifier,
                        dest_label=r.alias_label,
                        run_id=self.run.pk,
                    )
                    for r in recipients
                    if r.ref in accepted
                ],
                ignore_conflicts=True,
            )
            errors = [
                _error(self.run.pk, "add", by_ref[ref], reason, result.status if result else None)
                for ref, reason in (result.failed if result else [])
            ]
            mapping = " → ".join(self.mapping)
            reason = f"No usable identifier ({mapping})"
            errors += [_error(self.run.pk, "add", m, reason, None) for m in skipped]
            SyncRunError.objects.bulk_create(errors)
            self._count(
                added=len(accepted),
                failed=len(result.failed) if result else 0,
                skipped=len(skipped),
                add_cursor=page[-1].pk,
            )
        # Checked after the checkpoint: what the partner accepted is always in the ledger.
        self._check_still_running()

    def _send_removes(self, rows: Sequence[SyncedMember]) -> None:
        recipients = [
            Recipient(row.pk, row.dest_type, row.dest_value, row.dest_label) for row in rows
        ]
        result = self._send(add=[], remove=recipients)
        accepted = set(result.accepted)
        by_ref = {row.pk: row for row in rows}
        with transaction.atomic():
            SyncedMember.objects.filter(pk__in=accepted).delete()
            SyncRunError.objects.bulk_create(
                [
                    SyncRunError(
                        run_id=self.run.pk,
                        operation="remove",
                        member=diff.identity_text(
                            by_ref[ref].id_type, by_ref[ref].alias_label, by_ref[ref].value
                        ),
                        reason=reason[:255],
                        partner_status=result.status,
                    )
                    for ref, reason in result.failed
                ]
            )
            self._count(removed=len(accepted), failed=len(result.failed), remove_cursor=rows[-1].pk)
        self._check_still_running()

    def _send(self, *, add: list[Recipient], remove: list[Recipient]) -> BatchResult:
        """One batch, retried on 429, 5xx and network errors with backoff; auth stops the run."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                waited = self.bucket.acquire(1, max_wait=MAX_BACKOFF_SECONDS)
            except RateLimitTimeout as timeout:
                self._count(throttled_seconds=timeout.waited)
                continue
            try:
                result = self.partner.send_batch(
                    cohort_label=self.sync.cohort.name,
                    add=add,
                    remove=remove,
                    options=self.sync.options,
                    session=self.session,
                )
            except BatchTooLarge as too_large:
                self._count(requests=1, throttled_seconds=waited)
                return self._send_in_halves(add, remove, too_large.limit)
            except PartnerError as exc:
                self._count(requests=1, throttled_seconds=waited)
                if exc.auth:
                    refuse_connection(self.connection, exc.message)
                    raise StopRun(
                        f"{self.partner.label} refused the credentials: {exc.message}"
                    ) from None
                if not exc.retryable or attempt == MAX_ATTEMPTS:
                    raise StopRun(
                        f"{self.partner.label} answered {exc.status or 'nothing'}"
                        f" ({exc.message}) after {attempt} attempt(s)."
                    ) from None
                if exc.status == 429 and exc.rate_limit is not None:
                    # Every worker on this connection waits for the partner's reset, not just us.
                    self.bucket.observe(exc.rate_limit)
                delay = self._backoff(attempt, exc)
                self._count(retries=1, throttled_seconds=delay if exc.status == 429 else 0.0)
                self.sleep(delay)
                continue
            self._count(requests=result.requests, throttled_seconds=waited)
            if result.rate_limit is not None:
                self.bucket.observe(result.rate_limit)
            return result
        raise AssertionError("unreachable")

    def _send_in_halves(
        self, add: list[Recipient], remove: list[Recipient], limit: int
    ) -> BatchResult:
        """The partner said how many recipients it takes: send this batch in smaller ones and
        remember the size on the connection for every later run."""
        size = max(1, min(limit, (len(add) + len(remove)) // 2))
        if size >= len(add) + len(remove):
            raise StopRun(f"{self.partner.label} refuses even a batch of {size}.")
        self.batch_size = size
        config = dict(self.connection.config, batch_size=size)
        Connection.objects.filter(pk=self.connection.pk).update(config=config)
        merged = BatchResult(accepted=[], failed=[], requests=0, status=200)
        for items, is_add in ((add, True), (remove, False)):
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                result = self._send(add=chunk if is_add else [], remove=[] if is_add else chunk)
                merged.accepted += result.accepted
                merged.failed += result.failed
                merged.status = result.status
        return merged

    def _backoff(self, attempt: int, exc: PartnerError) -> float:
        signal = exc.rate_limit
        if signal is not None and signal.reset_at is not None:
            # Braze says when the window resets; jitter spreads the workers that wait for it.
            delay = max(0.0, signal.reset_at - time.time()) + random.uniform(0, 0.5)  # noqa: S311
        else:
            delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
        return min(delay, MAX_BACKOFF_SECONDS)

    def _check_still_running(self) -> None:
        status = SyncRun.objects.values_list("status", flat=True).get(pk=self.run.pk)
        if status != Status.RUNNING:
            raise StopRun("The run was canceled.", status=status)

    def _count(self, **counts: Any) -> None:
        """Add to the run's counters (named as its columns) and beat the heartbeat."""
        # Cursors are set, not added to: they are where the next page starts.
        updates: dict[str, Any] = {
            name: counts.pop(name) for name in ("add_cursor", "remove_cursor") if name in counts
        }
        updates.update({name: F(name) + value for name, value in counts.items() if value})
        updates["heartbeat_at"] = timezone.now()
        SyncRun.objects.filter(pk=self.run.pk).update(**updates)


def _error(
    run_id: int, operation: str, member: CohortMember, reason: str, status: int | None
) -> SyncRunError:
    return SyncRunError(
        run_id=run_id,
        operation=operation,
        member=diff.identity_text(member.id_type, member.alias_label, member.value),
        reason=reason[:255],
        partner_status=status,
    )
