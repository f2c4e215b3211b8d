"""RQ entry points for syncs: thin, ids in, the engine and the scheduler do the work.

syncs/queue.py enqueues them by name; rqcron (cohortsync/cron.py) schedules the ticks.
"""

from rq import get_current_job

from syncs.engine.run import run_sync
from syncs.scheduling.dispatch import dispatch_due_syncs as dispatch
from syncs.scheduling.reaper import reap_stuck_runs as reap
from syncs.verification import verify_run


def run_sync_job(run_id: int) -> str:
    return run_sync(run_id)


def dispatch_due_syncs() -> int:
    return dispatch()


def reap_stuck_runs() -> int:
    return reap()


def verify_run_job(run_id: int) -> str:
    job = get_current_job()
    return verify_run(run_id, last_attempt=job is None or not job.retries_left)
