"""RQ cron configuration, loaded by `python manage.py rqcron cohortsync.cron`.

RQ's cron has no leader election: run exactly ONE rqcron process per deployment.
"""

from rq import cron

from cohortsync.jobs import heartbeat

# The sync-engine issue adds dispatch_due_syncs (every minute) and reap_stuck_runs here.
cron.register(heartbeat, queue_name="default", interval=60, result_ttl=600, name="heartbeat")
