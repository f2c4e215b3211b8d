"""Sync services: create syncs and start their runs. Each change is audited in its transaction."""

import logging
from typing import Any

import redis
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from cohorts.models import Cohort
from connections.models import Connection
from core import audit
from syncs import cadence as cadences
from syncs.array_cap import refuse_array_overflow
from syncs.engine.events import Kind, record_event
from syncs.models import Sync, SyncRun, SyncRunEvent
from syncs.queue import enqueue_run
from syncs.trait_rules import validated_traits

logger = logging.getLogger(__name__)

# Members read back after a run, at most (Braze: 20 export requests of 50).
MAX_VERIFY_SAMPLE = 1000
DEFAULT_VERIFY_SAMPLE = 100

QUEUE_UNREACHABLE = (
    "The job queue (Redis) is unreachable: the run waits here and starts once Redis is back."
)


def allowed_identifiers(connection: Connection) -> list[str]:
    try:
        return connection.partner.allowed_identifiers(connection.get_config())
    except ValueError:
        return []  # a connection whose settings are not valid takes no sync


def create_sync(
    *,
    name: str,
    cohort: Cohort,
    connection: Connection,
    identifier_mapping: list[str],
    cadence: dict[str, object],
    leaving_members: str = Sync.Leaving.REMOVE,
    mass_removal_threshold_pct: int = 50,
    options: dict[str, object] | None = None,
    verify: bool = False,
    verify_sample_size: int = DEFAULT_VERIFY_SAMPLE,
    kind: str = Sync.Kind.MEMBERSHIP,
    traits: list[dict[str, Any]] | None = None,
    traits_send_nulls: bool = False,
    actor: User | None,
    ip: str | None = None,
) -> Sync:
    """Validate and save a sync. Bad input raises ValidationError and writes nothing.

    A trait sync (`kind` traits) sends `traits`, member properties, as custom attributes
    (syncs/trait_rules.py says what it takes)."""
    trait_fields = validated_traits(
        connection=connection,
        kind=kind,
        traits=traits,
        send_nulls=traits_send_nulls,
        identifier_mapping=identifier_mapping,
        verify=verify,
    )
    if kind == Sync.Kind.TRAITS:
        # By the partner's trait identifier, and members who leave keep what was sent.
        identifier_mapping, leaving_members = [str(trait_fields["identifier"])], Sync.Leaving.KEEP
    name, identifier_mapping, parsed = _validated(
        connection=connection,
        name=name,
        identifier_mapping=identifier_mapping,
        cadence=cadence,
        leaving_members=leaving_members,
        mass_removal_threshold_pct=mass_removal_threshold_pct,
    )
    options = _validated_options(connection, options, current=None)
    _validate_verification(connection, verify, verify_sample_size)
    first_run = cadences.next_run_at(parsed, after=timezone.now())
    with transaction.atomic():
        if kind == Sync.Kind.MEMBERSHIP:  # a trait sync writes no membership array
            refuse_array_overflow(connection=connection, cohort=cohort, options=options)
        sync = Sync.objects.create(
            next_run_at=first_run,
            name=name,
            cohort=cohort,
            connection=connection,
            identifier_mapping=identifier_mapping,
            cadence=parsed.to_dict(),
            leaving_members=leaving_members,
            mass_removal_threshold_pct=mass_removal_threshold_pct,
            options=options,
            verify=verify,
            verify_sample_size=verify_sample_size,
            kind=kind,
            traits=trait_fields["traits"],
            traits_send_nulls=trait_fields["send_nulls"],
            created_by=actor,
        )
        audit.record(
            actor=actor,
            action="sync.created",
            target=sync,
            details={"cohort": cohort.name, "connection": connection.name},
            ip=ip,
        )
    return sync


EDITABLE_FIELDS = (
    "name",
    "identifier_mapping",
    "cadence",
    "leaving_members",
    "mass_removal_threshold_pct",
    "options",
    "verify",
    "verify_sample_size",
    "traits",
    "traits_send_nulls",
)


def update_sync(*, sync: Sync, actor: User | None, ip: str | None = None, **changes: Any) -> Sync:
    """Change a sync's settings (its cohort and destination stay). Bad input raises
    ValidationError and writes nothing; the audit entry lists what changed, old and new.

    A new identifier mapping applies to members sent from now on; a full resync re-sends
    everyone with it.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"These settings cannot be changed: {', '.join(sorted(unknown))}.")
    values = {field: changes.get(field, getattr(sync, field)) for field in EDITABLE_FIELDS}
    name, mapping, parsed = _validated(
        connection=sync.connection,
        name=values["name"],
        identifier_mapping=values["identifier_mapping"],
        cadence=values["cadence"],
        leaving_members=values["leaving_members"],
        mass_removal_threshold_pct=values["mass_removal_threshold_pct"],
    )
    trait_fields = validated_traits(
        connection=sync.connection,
        kind=sync.kind,
        traits=values["traits"],
        send_nulls=values["traits_send_nulls"],
        identifier_mapping=values["identifier_mapping"],
        verify=values["verify"],
        leaving_members=values["leaving_members"],
    )
    # What the first run created (an AppsFlyer audience, say) stays unless replaced.
    options = _validated_options(sync.connection, values["options"], current=sync.options)
    _validate_verification(sync.connection, values["verify"], values["verify_sample_size"])
    new = {
        "name": name,
        "identifier_mapping": mapping,
        "cadence": parsed.to_dict(),
        "leaving_members": values["leaving_members"],
        "mass_removal_threshold_pct": values["mass_removal_threshold_pct"],
        "options": options,
        "verify": values["verify"],
        "verify_sample_size": values["verify_sample_size"],
        "traits": trait_fields["traits"],
        "traits_send_nulls": trait_fields["send_nulls"],
    }
    changed = {
        field: {"from": getattr(sync, field), "to": value}
        for field, value in new.items()
        if getattr(sync, field) != value
    }
    if not changed:
        return sync
    with transaction.atomic():
        if "options" in changed:
            refuse_array_overflow(
                connection=sync.connection,
                cohort=sync.cohort,
                options=options,
                current=sync.options,
                sync_id=sync.pk,
            )
        locked = Sync.objects.select_for_update().get(pk=sync.pk)
        for field, value in new.items():
            setattr(locked, field, value)
        update_fields = list(changed)
        if "cadence" in changed:
            locked.next_run_at = cadences.next_run_at(parsed, after=timezone.now())
            update_fields.append("next_run_at")
        locked.save(update_fields=update_fields)
        audit.record(actor=actor, action="sync.updated", target=locked, details=changed, ip=ip)
    return locked


def _validated(
    *,
    connection: Connection,
    name: str,
    identifier_mapping: list[str],
    cadence: dict[str, object],
    leaving_members: str,
    mass_removal_threshold_pct: int,
) -> tuple[str, list[str], cadences.Cadence]:
    name = str(name).strip()
    if not 0 < len(name) <= 255:
        raise ValidationError({"name": "Enter a name of at most 255 characters."})
    if not connection.is_destination:
        raise ValidationError(
            {
                "connection": f"{connection.name} is a {connection.partner.label} source: "
                "cohorts come from it, and a sync can only send to a destination."
            }
        )
    allowed = allowed_identifiers(connection)
    if (
        not isinstance(identifier_mapping, list)
        or not identifier_mapping
        or any(choice not in allowed for choice in identifier_mapping)
    ):
        raise ValidationError(
            {"identifier_mapping": f"Choose identifiers among: {', '.join(allowed)}."}
        )
    try:
        parsed = cadences.parse_cadence(cadence)
    except cadences.CadenceError as exc:
        raise ValidationError({"cadence": str(exc)}) from None
    if leaving_members not in Sync.Leaving.values:
        raise ValidationError(
            {"leaving_members": f"Choose one of: {', '.join(Sync.Leaving.values)}."}
        )
    if (
        not isinstance(mass_removal_threshold_pct, int)
        or isinstance(mass_removal_threshold_pct, bool)
        or not 1 <= mass_removal_threshold_pct <= 100
    ):
        raise ValidationError({"mass_removal_threshold_pct": "Choose 1 to 100 %."})
    return name, list(dict.fromkeys(identifier_mapping)), parsed


def _validated_options(
    connection: Connection, options: object, *, current: dict[str, Any] | None
) -> dict[str, Any]:
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ValidationError({"options": "Options must be an object."})
    try:
        return connection.partner.clean_sync_options(
            connection.get_config(), options, current=current
        )
    except ValueError as exc:  # ConfigError, or the connection's own settings not valid
        raise ValidationError({"options": str(exc)}) from None


def _validate_verification(connection: Connection, verify: object, sample_size: object) -> None:
    """Verification only where the partner can read membership back, with a sample it can
    afford; the wizard and the API share this check."""
    if not isinstance(verify, bool):
        raise ValidationError({"verify": "Verify must be true or false."})
    if (
        not isinstance(sample_size, int)
        or isinstance(sample_size, bool)
        or not 1 <= sample_size <= MAX_VERIFY_SAMPLE
    ):
        raise ValidationError(
            {"verify_sample_size": f"Choose a sample of 1 to {MAX_VERIFY_SAMPLE:,} members."}
        )
    if verify and not connection.partner.can_verify:
        raise ValidationError(
            {
                "verify": f"{connection.partner.label} has no API to read members back: "
                "its syncs cannot verify."
            }
        )


def start_run(
    *,
    sync: Sync,
    trigger: str,
    actor: User | None,
    ip: str | None = None,
    retry_of: SyncRun | None = None,
) -> tuple[SyncRun, bool]:
    """Queue a run unless one is queued or running already; returns (run, created).

    The database's one-active-run constraint decides, so two clicks make one run. A retry run
    names the run whose failed members it sends again (`retry_of`).
    """
    # A person's run (Run now, the API) and cleanup runs go ahead on a paused sync; the
    # schedule's runs do not.
    if sync.status != Sync.Status.ACTIVE and trigger not in (
        SyncRun.Trigger.MANUAL,
        SyncRun.Trigger.API,
        SyncRun.Trigger.CLEANUP,
    ):
        raise ValidationError(f"{sync.name} is {sync.get_status_display().lower()}.")
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(
                sync=sync,
                trigger=trigger,
                requested_by=actor,
                retry_of=retry_of,
                updates_traits=sync.is_traits,
            )
            who = f" by {actor.get_username()}" if actor is not None else ""
            of_run = f" of run {retry_of.pk}" if retry_of is not None else ""
            record_event(run.pk, Kind.QUEUED, f"{run.get_trigger_display()}{of_run}{who}.")
            # People's requests are audited; the schedule's own runs are in the run history.
            if trigger not in (SyncRun.Trigger.SCHEDULE, SyncRun.Trigger.REALTIME):
                audit.record(
                    actor=actor,
                    action="sync.run_requested",
                    target=sync,
                    details={
                        "run": run.pk,
                        "trigger": trigger,
                        **({"retry_of": retry_of.pk} if retry_of is not None else {}),
                    },
                    ip=ip,
                )
    except IntegrityError:
        active = SyncRun.objects.filter(sync=sync, status__in=SyncRun.ACTIVE).first()
        if active is None:
            raise
        return active, False
    _enqueue(run)
    return run, True


def _enqueue(run: SyncRun) -> None:
    try:
        enqueue_run(run.pk)
    except redis.RedisError as exc:
        logger.error("Could not queue sync run %s: %s", run.pk, type(exc).__name__)
        note_unqueued_runs([run.pk])


def waits_for_queue(run: SyncRun) -> bool:
    """Whether the run's job could not be queued yet (Redis unreachable when it was asked for)."""
    return (
        run.status == SyncRun.Status.QUEUED
        and SyncRunEvent.objects.filter(run=run, message=QUEUE_UNREACHABLE).exists()
    )


def note_unqueued_runs(run_ids: list[int]) -> None:
    """Runs whose job Redis did not take stay queued in the database, whichever path queued
    them, with a word on their timeline; the reaper queues their jobs once Redis is back."""
    SyncRunEvent.objects.bulk_create(
        SyncRunEvent(run_id=run_id, kind=Kind.QUEUED, message=QUEUE_UNREACHABLE)
        for run_id in run_ids
    )
