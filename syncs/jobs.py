"""RQ entry points for syncs: thin, ids in, the engine and the scheduler do the work.

syncs/queue.py enqueues them by name; rqcron (cohortsync/cron.py) schedules the ticks.
"""

from syncs.engine.run import run_sync
from syncs.scheduling.dispatch import dispatch_due_syncs as dispatch
from syncs.scheduling.reaper import reap_stuck_runs as reap


def run_sync_job(run_id: int) -> str:
    return run_sync(run_id)


def dispatch_due_syncs() -> int:
    return dispatch()


def reap_stuck_runs() -> int:
    return reap()
