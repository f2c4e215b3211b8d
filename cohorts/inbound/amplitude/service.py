"""Amplitude Cohort Webhooks: accept a batch (store it, log it, queue its job) and apply it.

Amplitude wants an answer within 1-2 s, so the request only validates and stores; a job on the
`default` queue applies the batch just after the commit. A batch whose message_id came before is
logged as a duplicate and changes nothing. Batches may arrive out of order: per cohort and user,
AmplitudeMemberState keeps the computed time of the latest batch applied, and an older batch
changes nothing for that user.
"""

import logging
from datetime import datetime, timedelta

import django_rq
import redis
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from cohorts.inbound.amplitude.schema import WebhookBatch
from cohorts.inbound.service import log_request
from cohorts.membership import ChangeCounts, Identity, apply_changes, record_change
from cohorts.models import AmplitudeBatch, AmplitudeMemberState, Cohort, IdType, ImportRequest
from cohorts.queue import AMPLITUDE_QUEUE, amplitude_job_id, enqueue_amplitude_batch
from connections.models import ImportKey

logger = logging.getLogger(__name__)

PARTNER = ImportKey.Partner.AMPLITUDE.value
ENDPOINT = "webhook"
# A queued batch whose job Redis lost is queued again after this (the commit-to-enqueue gap).
GRACE = timedelta(minutes=2)
DEAD = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
NOT_APPLIED = "The batch could not be applied (its job failed); nothing of it was applied."


def accept_batch(*, key: ImportKey, batch: WebhookBatch, ip: str | None) -> bool:
    """Store the batch and log it as queued, or log a duplicate; True when it is new. Creates
    the cohort on its first batch. The job is queued once the rows are committed."""
    try:
        with transaction.atomic():
            cohort, _ = Cohort.objects.get_or_create(
                source=Cohort.Source.PARTNER,
                partner=PARTNER,
                partner_cohort_id=batch.cohort_id,
                defaults={"name": batch.cohort_name},
            )
            logged = log_request(
                key=key,
                partner=PARTNER,
                endpoint=ENDPOINT,
                cohort_pk=cohort.pk,
                cohort_id=batch.cohort_id,
                http_status=200,
                ip=ip,
                status=ImportRequest.Status.QUEUED,
            )
            stored = AmplitudeBatch.objects.create(
                message_id=batch.message_id,
                cohort=cohort,
                cohort_name=batch.cohort_name,
                in_cohort=batch.in_cohort,
                computed_at=batch.computed_at,
                user_ids=list(batch.user_ids),
                user_properties=batch.user_properties,
                users_sent=batch.sent,
                import_request=logged,
            )
    except IntegrityError:
        # The message_id is taken: a retry of a batch already received (perhaps concurrently).
        if not AmplitudeBatch.objects.filter(message_id=batch.message_id).exists():
            raise
        _log_duplicate(key=key, batch=batch, ip=ip)
        return False
    # After the commit, so the worker always finds the row.
    _enqueue(stored.pk)
    return True


def _log_duplicate(*, key: ImportKey, batch: WebhookBatch, ip: str | None) -> None:
    first = AmplitudeBatch.objects.filter(message_id=batch.message_id).first()
    log_request(
        key=key,
        partner=PARTNER,
        endpoint=ENDPOINT,
        cohort_pk=first.cohort_id if first is not None else None,
        cohort_id=batch.cohort_id,
        http_status=200,
        counts=ChangeCounts(ignored=batch.sent),
        ip=ip,
        status=ImportRequest.Status.DUPLICATE,
    )


def _enqueue(batch_id: int) -> None:
    try:
        enqueue_amplitude_batch(batch_id)
    except redis.RedisError as exc:
        # The batch waits in the database; requeue_waiting_batches queues it once Redis is back.
        logger.error("Could not queue Amplitude batch %s: %s", batch_id, type(exc).__name__)


def apply_batch(batch_id: int) -> AmplitudeBatch | None:
    """Apply one queued batch in one transaction; None if it is not queued (already applied).

    The cohort row is locked first, so two batches of one cohort apply one after the other.
    """
    with transaction.atomic():
        batch = (
            AmplitudeBatch.objects.select_for_update()
            .filter(pk=batch_id, status=AmplitudeBatch.Status.QUEUED)
            .first()
        )
        if batch is None:
            return None
        # NO KEY: pushes logging rows that point at the cohort (FOR KEY SHARE) need not wait.
        cohort = Cohort.objects.select_for_update(no_key=True).get(pk=batch.cohort_id)
        fresh = _fresh_users(batch)
        # A user sent with user_properties gets them as its properties, whole (a property
        # Amplitude no longer sends is gone); one sent without keeps its own.
        properties = batch.user_properties or {}
        identities = [
            Identity(IdType.EXTERNAL_ID.value, user_id, properties=properties.get(user_id))
            for user_id in fresh
        ]
        if batch.in_cohort:
            counts = apply_changes(cohort.pk, add=identities)
        else:
            counts = apply_changes(cohort.pk, remove=identities)
        AmplitudeMemberState.objects.bulk_create(
            [
                AmplitudeMemberState(
                    cohort=cohort,
                    user_id=user_id,
                    computed_at=batch.computed_at,
                    in_cohort=batch.in_cohort,
                )
                for user_id in fresh
            ],
            update_conflicts=True,
            unique_fields=["cohort", "user_id"],
            update_fields=["computed_at", "in_cohort"],
            batch_size=1000,
        )
        _rename(cohort, batch)
        _logged(batch).update(
            status=ImportRequest.Status.APPLIED,
            added=counts.added,
            removed=counts.removed,
            # Repeats, stale users and no-ops: the counts add up to the users sent.
            ignored=batch.users_sent - counts.added - counts.removed,
        )
        batch.status = AmplitudeBatch.Status.APPLIED
        batch.applied_at = timezone.now()
        batch.user_ids = []
        batch.user_properties = {}
        batch.save(update_fields=["status", "applied_at", "user_ids", "user_properties"])
    return batch


def _logged(batch: AmplitudeBatch) -> "QuerySet[ImportRequest]":
    """The batch's row in the import log (none if retention deleted it)."""
    return ImportRequest.objects.filter(pk=batch.import_request_id or 0)


def _fresh_users(batch: AmplitudeBatch) -> list[str]:
    """The batch's users for whom no later-computed batch was applied already."""
    user_ids = [str(user_id) for user_id in batch.user_ids]
    later = set(
        AmplitudeMemberState.objects.filter(
            cohort_id=batch.cohort_id, user_id__in=user_ids, computed_at__gt=batch.computed_at
        ).values_list("user_id", flat=True)
    )
    return [user_id for user_id in user_ids if user_id not in later]


def _rename(cohort: Cohort, batch: AmplitudeBatch) -> None:
    """Take the batch's cohort_name unless a later-computed batch was applied already."""
    if cohort.name == batch.cohort_name:
        return
    newer = AmplitudeBatch.objects.filter(
        cohort=cohort,
        status=AmplitudeBatch.Status.APPLIED,
        computed_at__gt=batch.computed_at,
    ).exists()
    if not newer:
        cohort.name = batch.cohort_name
        cohort.save(update_fields=["name"])
        record_change(cohort.pk, ChangeCounts(), renamed=True)


def fail_batch(batch_id: int) -> None:
    """A batch whose job died: marked failed, and its log says nothing was applied (its
    transaction rolled back). Amplitude had its 200 and will not send it again: the import log
    shows it, and a new sync of the cohort in Amplitude brings the users back."""
    with transaction.atomic():
        batch = (
            AmplitudeBatch.objects.select_for_update()
            .filter(pk=batch_id, status=AmplitudeBatch.Status.QUEUED)
            .first()
        )
        if batch is None:
            return
        batch.status = AmplitudeBatch.Status.FAILED
        batch.save(update_fields=["status"])
        _logged(batch).update(status=ImportRequest.Status.REJECTED, error=NOT_APPLIED)


def requeue_waiting_batches(*, now: datetime | None = None) -> int:
    """Queued batches whose job Redis does not have (it was unreachable, or restarted empty) are
    queued again; those whose job died are failed. Returns how many it touched."""
    now = now or timezone.now()
    connection = django_rq.get_connection(AMPLITUDE_QUEUE)
    waiting = AmplitudeBatch.objects.filter(
        status=AmplitudeBatch.Status.QUEUED, created_at__lt=now - GRACE
    ).values_list("pk", flat=True)
    touched = 0
    for batch_id in waiting:
        try:
            status = Job.fetch(amplitude_job_id(batch_id), connection=connection).get_status()
        except NoSuchJobError:
            status = None
        if status is None:
            enqueue_amplitude_batch(batch_id)
        elif status in DEAD:
            fail_batch(batch_id)
        else:
            continue
        touched += 1
    return touched
