"""Picking an Amplitude cohort to pull, changing its cadence, stopping it.

A pull feeds one cohort (keyed, like the webhook's, by Amplitude's cohort id), so a cohort an
Amplitude webhook created can be pulled too. Every change is audited in its transaction.
"""

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from cohorts.models import AmplitudePull, Cohort
from cohorts.pulls.quota import check_cadence
from connections.models import Connection, ImportKey
from core import audit

PARTNER = ImportKey.Partner.AMPLITUDE.value
MAX_COHORT_ID = 255


def _check(connection: Connection, amplitude_cohort_id: str, name: str, cadence: str) -> None:
    if not connection.partner.downloads_cohorts:
        raise ValidationError(f"{connection.name} is not a source cohortsync can download from.")
    if not amplitude_cohort_id or len(amplitude_cohort_id) > MAX_COHORT_ID:
        raise ValidationError("Choose a cohort from the source's list.")
    if not name.strip():
        raise ValidationError("The cohort needs a name.")
    if cadence not in AmplitudePull.Cadence.values:
        raise ValidationError("The cadence must be once, hourly or daily.")


def create_pull(
    *,
    connection: Connection,
    amplitude_cohort_id: str,
    name: str,
    cadence: str,
    actor: User | None,
    ip: str | None = None,
) -> AmplitudePull:
    """Pull a cohort from the source's list; its first download is queued by the dispatcher
    within a minute. Refused, nothing saved, past the monthly quota or if already pulled."""
    amplitude_cohort_id = amplitude_cohort_id.strip()
    _check(connection, amplitude_cohort_id, name, cadence)
    try:
        with transaction.atomic():
            # Locks the source: two pulls picked at once cannot both fit under the quota.
            Connection.objects.select_for_update().get(pk=connection.pk)
            check_cadence(connection.pk, cadence)
            cohort, _ = Cohort.objects.get_or_create(
                source=Cohort.Source.PARTNER,
                partner=PARTNER,
                partner_cohort_id=amplitude_cohort_id,
                defaults={"name": name.strip()[:255], "created_by": actor},
            )
            pull = AmplitudePull.objects.create(
                cohort=cohort,
                connection=connection,
                amplitude_cohort_id=amplitude_cohort_id,
                cadence=cadence,
                next_run_at=timezone.now(),
                created_by=actor,
            )
            audit.record(
                actor=actor,
                action="cohort.pull_created",
                target=cohort,
                details={
                    "connection": connection.pk,
                    "amplitude_cohort_id": amplitude_cohort_id,
                    "cadence": cadence,
                },
                ip=ip,
            )
    except IntegrityError:
        raise ValidationError(f"{name} is already pulled.") from None
    return pull


def change_cadence(
    *, pull: AmplitudePull, cadence: str, actor: User | None, ip: str | None = None
) -> AmplitudePull:
    """A new cadence, refused past the quota; a pull that is not running is due at once."""
    if cadence not in AmplitudePull.Cadence.values:
        raise ValidationError("The cadence must be once, hourly or daily.")
    with transaction.atomic():
        Connection.objects.select_for_update().get(pk=pull.connection_id)
        check_cadence(pull.connection_id, cadence, replacing=pull.pk)
        before = pull.cadence
        AmplitudePull.objects.filter(pk=pull.pk).update(cadence=cadence, next_run_at=timezone.now())
        audit.record(
            actor=actor,
            action="cohort.pull_changed",
            target=pull.cohort,
            details={"cadence": cadence, "before": before},
            ip=ip,
        )
    pull.refresh_from_db()
    return pull


def stop_pull(*, pull: AmplitudePull, actor: User | None, ip: str | None = None) -> None:
    """No more downloads; the cohort keeps its members."""
    with transaction.atomic():
        audit.record(
            actor=actor,
            action="cohort.pull_stopped",
            target=pull.cohort,
            details={"amplitude_cohort_id": pull.amplitude_cohort_id},
            ip=ip,
        )
        pull.delete()
