"""Runs of a sync: trigger one (marketers and admins), list and read them, their errors and
their requests and answers (every role)."""

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Status

from api.access import get_or_404
from api.auth import TokenAuth, actor
from api.pagination import PageQuery, page_of
from api.schemas import Id, Message, Page, RunDetailOut, RunErrorOut, RunExchangeOut, RunOut
from core.audit import client_ip
from syncs.lifecycle import retry_failed_members
from syncs.models import Sync, SyncRun, SyncRunError, SyncRunExchange
from syncs.pages.run_errors import error_groups
from syncs.services import start_run

VIEW = "syncs.view_sync"
MANAGE = "syncs.manage_syncs"

router = Router(tags=["runs"])


def _run(sync_id: int, run_id: int) -> SyncRun:
    """The run, which must belong to the sync in the URL."""
    get_or_404(Sync.objects.only("id"), sync_id, "sync")
    return get_or_404(SyncRun.objects.filter(sync_id=sync_id), run_id, "run of this sync")


@router.post(
    "/syncs/{sync_id}/runs",
    response={200: RunOut, 202: RunOut, 400: Message},
    auth=TokenAuth(MANAGE),
)
def trigger_run(request: HttpRequest, sync_id: Id) -> Status[Any]:
    """Run the sync now, as the dashboard's Run now does (a paused sync runs too). 202 with the
    new run; 200 with the run already queued or running, if there is one: a sync never runs
    twice at once. A run asked for while the job queue (Redis) is unreachable is kept, queued,
    and starts once Redis is back; its timeline says so."""
    user = actor(request)
    sync = get_or_404(Sync.objects.all(), sync_id, "sync")
    run, created = start_run(
        sync=sync, trigger=SyncRun.Trigger.API, actor=user, ip=client_ip(request)
    )
    if not created:
        return Status(200, run)
    return Status(202, run)


@router.post(
    "/syncs/{sync_id}/runs/{run_id}/retry-failed",
    response={202: RunOut, 400: Message},
    auth=TokenAuth(MANAGE),
)
def retry_failed(request: HttpRequest, sync_id: Id, run_id: Id) -> Status[SyncRun]:
    """Start a run that sends again only the members that failed in this run (not those it
    skipped) and are still due: adds still in the cohort and not in the destination, removals
    still in it and no longer in the cohort. 202 with the new run (trigger `retry`, `retry_of`
    this run). Refused (400, nothing started) for a run without failed members, a sync that is
    paused or needs attention, or while a run of the sync is queued or running."""
    run = _run(sync_id, run_id)
    new_run = retry_failed_members(run=run, actor=actor(request), ip=client_ip(request))
    return Status(202, new_run)


@router.get("/syncs/{sync_id}/runs", response=Page[RunOut], auth=TokenAuth(VIEW))
def list_runs(request: HttpRequest, sync_id: Id, page: Query[PageQuery]) -> dict[str, Any]:
    """The sync's runs, newest first."""
    get_or_404(Sync.objects.only("id"), sync_id, "sync")
    return page_of(SyncRun.objects.filter(sync_id=sync_id), page)


@router.get("/syncs/{sync_id}/runs/{run_id}", response=RunDetailOut, auth=TokenAuth(VIEW))
def get_run(request: HttpRequest, sync_id: Id, run_id: Id) -> dict[str, Any]:
    """A run with its counts and its errors grouped by reason, commonest first (up to 20
    reasons, 5 sample members each). Every error is in `.../errors`."""
    run = _run(sync_id, run_id)
    return {**RunOut.model_validate(run).model_dump(), "error_groups": error_groups(run)}


@router.get(
    "/syncs/{sync_id}/runs/{run_id}/errors", response=Page[RunErrorOut], auth=TokenAuth(VIEW)
)
def list_run_errors(
    request: HttpRequest, sync_id: Id, run_id: Id, page: Query[PageQuery]
) -> dict[str, Any]:
    """The members the run could not add or remove, or skipped, in the order they happened."""
    run = _run(sync_id, run_id)
    return page_of(SyncRunError.objects.filter(run=run), page)


@router.get(
    "/syncs/{sync_id}/runs/{run_id}/exchanges",
    response=Page[RunExchangeOut],
    auth=TokenAuth(VIEW),
)
def list_run_exchanges(
    request: HttpRequest, sync_id: Id, run_id: Id, page: Query[PageQuery]
) -> dict[str, Any]:
    """The requests the run kept with the partner's answers, in the order they were sent, as
    its page shows them: every request of its first 5 batches and every one the partner refused
    or left unanswered, at most 50 a run (the run's `exchanges_left_out` counts refused ones past
    that). Redacted: no credential, identifiers only for the first 3 members of a request."""
    run = _run(sync_id, run_id)
    return page_of(SyncRunExchange.objects.filter(run=run), page)
