"""Two dispatcher processes at the same moment start each due sync once (real OS processes on
a scratch database shared with the test, and the real Redis of the rq_redis fixture)."""

import uuid
from datetime import UTC, datetime

import django_rq

from tests.worker_process import query, race, shell

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

SETUP_DUE_SYNCS = """
import json, os
from datetime import datetime
from connections.partners import PARTNERS
from connections.services import create_connection
from cohorts.models import Cohort
from syncs.models import Sync
from syncs.services import create_sync
name = os.environ["NAME"]
config = PARTNERS["braze"].parse_config(
    {"instance": "custom", "custom_endpoint": "https://rest.iad-01.braze.com"}
)
connection = create_connection(
    kind="braze", name=name, config=config, secret="braze-rest-key-0000-1a2b", actor=None
)
cohort = Cohort.objects.create(name=name, source=Cohort.Source.MANUAL)
ids = [
    create_sync(
        name=f"{name} {n}", cohort=cohort, connection=connection,
        identifier_mapping=["external_id"], cadence={"kind": "hourly", "minute": 0}, actor=None,
    ).pk
    for n in range(int(os.environ["SYNCS"]))
]
Sync.objects.filter(pk__in=ids).update(next_run_at=datetime.fromisoformat(os.environ["DUE"]))
print(json.dumps(ids))
"""

DISPATCH = """
import json, os
from datetime import datetime
from syncs.scheduling.dispatch import dispatch_due_syncs
print(json.dumps(dispatch_due_syncs(now=datetime.fromisoformat(os.environ["NOW"]))))
"""


def test_two_dispatchers_at_the_same_moment_start_each_due_sync_once(
    worker_env, rq_redis, tmp_path
):

    syncs = shell(
        worker_env, SETUP_DUE_SYNCS, NAME=f"due-{uuid.uuid4().hex[:8]}", SYNCS="200", DUE=str(NOON)
    )
    env = {**worker_env, "NOW": str(NOON.replace(second=5))}
    started = race(env, tmp_path, [DISPATCH, DISPATCH])

    assert sum(started) == 200
    placeholders = ", ".join(["%s"] * len(syncs))
    runs = query(
        worker_env,
        f"SELECT sync_id, COUNT(*) FROM syncs_syncrun WHERE sync_id IN ({placeholders}) "  # noqa: S608
        "GROUP BY sync_id",
        tuple(syncs),
    )
    assert sorted(sync for sync, _ in runs) == sorted(syncs)
    assert {count for _, count in runs} == {1}
    slots = query(
        worker_env,
        f"SELECT DISTINCT next_run_at FROM syncs_sync WHERE id IN ({placeholders})",  # noqa: S608
        tuple(syncs),
    )
    assert len(slots) == 1  # every sync moved on to its next hour, once
    queue = django_rq.get_queue("runs")
    assert queue.count == 200
    assert len(set(queue.job_ids)) == 200
