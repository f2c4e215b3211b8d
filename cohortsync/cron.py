"""RQ cron configuration, loaded by `python manage.py rqcron cohortsync.cron`.

RQ's cron has no leader election: run exactly ONE rqcron process per deployment.
"""

from rq import cron

from cohorts.jobs import dispatch_due_pulls, reap_stuck_uploads
from cohortsync.jobs import heartbeat, purge_expired_records, requeue_waiting_work
from syncs.jobs import dispatch_due_syncs, reap_stuck_runs

cron.register(heartbeat, queue_name="default", interval=60, result_ttl=600, name="heartbeat")
# Both are safe to run twice (compare-and-set claims), so an accidental second rqcron is harmless.
cron.register(
    dispatch_due_syncs,
    queue_name="default",
    cron="* * * * *",
    job_timeout=300,
    result_ttl=600,
    name="dispatch_due_syncs",
)
# Every 30 s: a heartbeat is stale after 90 s, so a dead worker's run is resumed or failed
# within two minutes (invariant 6 in docs/architecture.md).
cron.register(
    reap_stuck_runs,
    queue_name="default",
    interval=30,
    job_timeout=300,
    result_ttl=600,
    name="reap_stuck_runs",
)
# Amplitude pulls due on their cadence; safe to run twice too (compare-and-set on next_run_at).
cron.register(
    dispatch_due_pulls,
    queue_name="default",
    cron="* * * * *",
    job_timeout=300,
    result_ttl=600,
    name="dispatch_due_pulls",
)
cron.register(
    reap_stuck_uploads,
    queue_name="default",
    interval=120,
    job_timeout=300,
    result_ttl=600,
    name="reap_stuck_uploads",
)
# Checks and alert deliveries that waited in the database while Redis was away.
cron.register(
    requeue_waiting_work,
    queue_name="default",
    interval=60,
    job_timeout=120,
    result_ttl=600,
    name="requeue_waiting_work",
)
# Daily, at a quiet hour (UTC): import requests, refused-request counts, run timelines and alert
# deliveries past their retention (COHORTSYNC_RETENTION_DAYS_*), deleted in bounded batches.
cron.register(
    purge_expired_records,
    queue_name="default",
    cron="17 3 * * *",
    job_timeout=600,
    result_ttl=86400,
    name="purge_expired_records",
)
