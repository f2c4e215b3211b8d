"""Sync services: create syncs and start their runs. Each change is audited in its transaction."""

import logging
import secrets

import redis
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from cohortsync import audit
from connections.models import Connection
from syncs import cadence as cadences
from syncs.models import Cohort, Sync, SyncRun

logger = logging.getLogger(__name__)

IDENTIFIERS_BY_KIND = {
    "braze": ["external_id", "user_alias", "braze_id"],
    "appsflyer": ["gaid", "oaid", "idfv", "external_id", "amplitude_id", "braze_id"],
}
# AppsFlyer audiences take different device identifiers per platform (partner-apis.md §4.2).
NOT_ON_PLATFORM = {"android": {"idfv"}, "ios": {"gaid", "oaid"}}


def allowed_identifiers(connection: Connection) -> list[str]:
    allowed = IDENTIFIERS_BY_KIND.get(connection.kind, [])
    if connection.kind == Connection.Kind.APPSFLYER:
        platform = connection.config.get("platform", "")
        allowed = [name for name in allowed if name not in NOT_ON_PLATFORM.get(platform, set())]
    return allowed


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
    actor: User | None,
    ip: str | None = None,
) -> Sync:
    """Validate and save a sync. Bad input raises ValidationError and writes nothing."""
    name = name.strip()
    if not 0 < len(name) <= 255:
        raise ValidationError({"name": "Enter a name of at most 255 characters."})
    allowed = allowed_identifiers(connection)
    if not identifier_mapping or any(choice not in allowed for choice in identifier_mapping):
        raise ValidationError(
            {"identifier_mapping": f"Choose identifiers among: {', '.join(allowed)}."}
        )
    try:
        parsed = cadences.parse_cadence(cadence)
    except cadences.CadenceError as exc:
        raise ValidationError({"cadence": str(exc)}) from None
    if not 1 <= mass_removal_threshold_pct <= 100:
        raise ValidationError({"mass_removal_threshold_pct": "Choose 1 to 100 %."})
    options = dict(options or {})
    if connection.kind == Connection.Kind.APPSFLYER and not options.get("import_key"):
        # The audience is created on the first run as "<cohort name>-<short id>".
        options["audience_suffix"] = secrets.token_hex(3)
    first_run = cadences.next_run_at(parsed, after=timezone.now())
    with transaction.atomic():
        sync = Sync.objects.create(
            next_run_at=first_run,
            name=name,
            cohort=cohort,
            connection=connection,
            identifier_mapping=list(dict.fromkeys(identifier_mapping)),
            cadence=parsed.to_dict(),
            leaving_members=leaving_members,
            mass_removal_threshold_pct=mass_removal_threshold_pct,
            options=options,
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


def start_run(
    *, sync: Sync, trigger: str, actor: User | None, ip: str | None = None
) -> tuple[SyncRun, bool]:
    """Queue a run unless one is queued or running already; returns (run, created).

    The database's one-active-run constraint decides, so two clicks make one run.
    """
    if sync.status != Sync.Status.ACTIVE and trigger != SyncRun.Trigger.MANUAL:
        raise ValidationError(f"{sync.name} is {sync.get_status_display().lower()}.")
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(sync=sync, trigger=trigger, requested_by=actor)
            # People's requests are audited; the schedule's own runs are in the run history.
            if trigger not in (SyncRun.Trigger.SCHEDULE, SyncRun.Trigger.REALTIME):
                audit.record(
                    actor=actor,
                    action="sync.run_requested",
                    target=sync,
                    details={"run": run.pk, "trigger": trigger},
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
    from syncs.jobs import enqueue_run

    try:
        enqueue_run(run.pk)
    except redis.RedisError as exc:
        logger.error("Could not queue sync run %s: %s", run.pk, type(exc).__name__)
        SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.QUEUED).update(
            status=SyncRun.Status.FAILED,
            error_summary="The job queue (Redis) is unreachable; the run was not started.",
        )
        run.refresh_from_db()
