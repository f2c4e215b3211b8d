"""A worker SIGKILLed mid-run, three times: the run resumes from its checkpoints and sends
nothing twice beyond the resume bound (the members answered since its last checkpoint and those
in flight); killed a fourth time, it fails.

Real OS processes (`manage.py rqworker`, `manage.py shell`) share a scratch database with the
test (tests/worker_process.py) and use the real Redis of the rq_redis fixture; the partner
simulator runs in this process, over real HTTP.
"""

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from connections.sandbox import DEMO_BRAZE_KEY
from syncs.engine.group_commit import GATHER_WHILE_WRITING
from syncs.engine.run import UNSETTLED_PER_SLOT
from syncs.models import SyncRunEvent
from tests.faults.conftest import CHECKPOINT_MEMBERS
from tests.faults.simulator import BATCH, in_destination, sandbox_post, track_answers
from tests.worker_process import kill_group, query, shell, start_worker

Kind = SyncRunEvent.Kind
# The connection's maximum concurrent requests in these tests.
IN_FLIGHT_REQUESTS = 4
# The resume bound: members a killed worker may have sent that its ledger lacks (the group commit
# being written and the one being gathered, each under GATHER_WHILE_WRITING groups plus the batch
# that filled it; and the batches sent and not yet settled). Under SQLite a run writes its own
# groups, so only the second counts there.
RESEND_BOUND = (
    2 * (GATHER_WHILE_WRITING * CHECKPOINT_MEMBERS + BATCH)
    + UNSETTLED_PER_SLOT * IN_FLIGHT_REQUESTS * BATCH
)
# The requests those members took (each kill may also cut one request per slot short).
RESEND_REQUESTS = RESEND_BOUND // BATCH


SETUP_RUN = """
import json, os
from connections.partners import PARTNERS
from connections.services import create_connection
from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort
from syncs.models import SyncRun
from syncs.services import create_sync, start_run
name = os.environ["NAME"]
config = PARTNERS["braze"].parse_config(
    {"instance": "custom", "custom_endpoint": os.environ["SANDBOX_URL"],
     "update_existing_only": False, "max_concurrent_requests": int(os.environ["IN_FLIGHT"])}
)
connection = create_connection(
    kind="braze", name=name, config=config, secret=os.environ["BRAZE_KEY"], actor=None
)
cohort = Cohort.objects.create(name=name, source=Cohort.Source.MANUAL)
members = [f"{name}-{n:05}" for n in range(int(os.environ["MEMBERS"]))]
apply_changes(cohort.pk, add=[Identity("external_id", value) for value in members])
sync = create_sync(
    name=name, cohort=cohort, connection=connection, identifier_mapping=["external_id"],
    cadence={"kind": "once"}, actor=None,
)
run, _ = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
# As if earlier workers had already died during this run.
SyncRun.objects.filter(pk=run.pk).update(interruptions=int(os.environ["PRIOR_INTERRUPTIONS"]))
print(json.dumps({"run": run.pk, "sync": sync.pk, "members": members}))
"""

# The reaper at the first moment it may act: just past the stale-heartbeat bound.
REAP = """
import json, os
from datetime import timedelta
from syncs.models import SyncRun
from syncs.scheduling.reaper import STALE_HEARTBEAT, reap_stuck_runs
run = SyncRun.objects.get(pk=os.environ["RUN_ID"])
print(json.dumps(reap_stuck_runs(now=run.heartbeat_at + STALE_HEARTBEAT + timedelta(seconds=1))))
"""

RUN_STATE = """
import json, os
from syncs.models import SyncedMember, SyncRun, SyncRunEvent
run = SyncRun.objects.get(pk=os.environ["RUN_ID"])
fields = ["status", "interruptions", "planned_adds", "planned_removes", "added", "removed",
          "failed", "skipped", "requests", "error_summary"]
kinds = list(SyncRunEvent.objects.filter(run=run).order_by("id").values_list("kind", flat=True))
ledger = sorted(SyncedMember.objects.filter(sync_id=run.sync_id).values_list("value", flat=True))
print(json.dumps({**{f: getattr(run, f) for f in fields}, "events": kinds, "ledger": ledger}))
"""

START_RUN = """
import json, os
from syncs.models import Sync, SyncRun
from syncs.services import start_run
run, created = start_run(
    sync=Sync.objects.get(pk=os.environ["SYNC_ID"]), trigger=SyncRun.Trigger.MANUAL, actor=None
)
print(json.dumps({"run": run.pk, "created": created}))
"""


def set_up_run(env: dict[str, str], sandbox: Any, members: int, prior: int = 0) -> dict[str, Any]:
    name = f"kill-{uuid.uuid4().hex[:8]}"
    ids = shell(
        env,
        SETUP_RUN,
        NAME=name,
        MEMBERS=str(members),
        BRAZE_KEY=DEMO_BRAZE_KEY,
        PRIOR_INTERRUPTIONS=str(prior),
        IN_FLIGHT=str(IN_FLIGHT_REQUESTS),
    )
    return {**ids, "name": name}


def progress(env: dict[str, str], run_id: int) -> tuple[str, int]:
    [(status, added)] = query(
        env, "SELECT status, added FROM syncs_syncrun WHERE id = %s", (run_id,)
    )
    return status, added


def kill_after(env: dict[str, str], run_id: int, added_at_least: int) -> dict[str, Any]:
    """Start a worker, SIGKILL it (and its work horse) once the run has checkpointed
    `added_at_least` members, and return the run as the dead worker left it."""
    worker = start_worker(env, Path(env["WORKER_LOG"]))
    try:
        deadline = time.monotonic() + 90
        while progress(env, run_id)[1] < added_at_least:
            if worker.poll() is not None or time.monotonic() > deadline:
                log = Path(env["WORKER_LOG"]).read_text()
                pytest.fail(f"the run never reached {added_at_least}; the worker's log:\n{log}")
            time.sleep(0.01)
    finally:
        kill_group(worker)
    assert worker.returncode == -9
    return shell(env, RUN_STATE, RUN_ID=str(run_id))


def finish_with_a_worker(env: dict[str, str]) -> None:
    worker = start_worker(env, Path(env["WORKER_LOG"]), burst=True)
    try:
        worker.wait(timeout=120)
    finally:
        kill_group(worker)


def counts_add_up(run: dict[str, Any]) -> bool:
    planned = run["planned_adds"] + run["planned_removes"]
    return planned == run["added"] + run["removed"] + run["failed"] + run["skipped"]


def test_a_run_whose_worker_is_killed_three_times_resumes_and_sends_nothing_twice(
    worker_env, sandbox, member_writes
):
    # Each request takes 60 ms, so the 40 batches of this run take a few seconds: time for the
    # test to see checkpoints land and kill the worker between them.
    sandbox_post(sandbox, "faults", {"partner": "braze", "latency_ms": 60})
    cohort_size = 3000
    setup = set_up_run(worker_env, sandbox, cohort_size)
    run_id = setup["run"]

    for kill, target in enumerate((600, 1350, 2100), start=1):
        dead = kill_after(worker_env, run_id, target)
        # The dead worker's run is still "running"; what it checkpointed is in the ledger.
        assert dead["status"] == "running"
        assert dead["interruptions"] == kill - 1
        assert dead["added"] >= target
        assert dead["added"] % BATCH == 0
        assert len(dead["ledger"]) == dead["added"]
        # What the partner holds is the ledger, plus at most the resume bound.
        held = in_destination(sandbox, setup["name"])
        assert set(dead["ledger"]) <= held
        assert len(held - set(dead["ledger"])) <= RESEND_BOUND
        assert shell(worker_env, REAP, RUN_ID=str(run_id)) == 1
    finish_with_a_worker(worker_env)

    run = shell(worker_env, RUN_STATE, RUN_ID=str(run_id))
    assert run["status"] == "succeeded", run["error_summary"]
    assert run["interruptions"] == 3
    assert (run["planned_adds"], run["added"], run["failed"], run["skipped"]) == (3000, 3000, 0, 0)
    assert counts_add_up(run)
    assert run["events"].count(Kind.INTERRUPTED) == 3
    assert run["events"].count(Kind.RESUMED) == 3
    assert run["events"].count(Kind.CLAIMED) == 1
    assert run["events"][-1] == Kind.FINISHED
    # The destination is the cohort: nothing skipped...
    assert in_destination(sandbox, setup["name"]) == set(setup["members"]) == set(run["ledger"])
    # ...and nothing sent twice beyond the resume bound at each kill.
    assert cohort_size <= member_writes.count <= cohort_size + 3 * RESEND_BOUND
    answers = track_answers(sandbox)
    # A request the kill cut off mid-body reaches the partner truncated and is refused (400,
    # answered to a dead socket), applying nothing: at most the batches in flight at each kill.
    assert set(answers) <= {201, 400}
    assert answers.get(400, 0) <= 3 * IN_FLIGHT_REQUESTS
    assert answers[201] <= cohort_size // BATCH + 3 * RESEND_REQUESTS
    # The run's own request count misses at most the requests answered since each kill's last
    # checkpoint (counted with it) and those the kills cut short.
    assert answers[201] - 3 * RESEND_REQUESTS <= run["requests"] <= answers[201]


def test_a_run_whose_worker_dies_a_fourth_time_fails_and_the_next_run_completes_it(
    worker_env, sandbox, member_writes
):
    sandbox_post(sandbox, "faults", {"partner": "braze", "latency_ms": 60})
    setup = set_up_run(worker_env, sandbox, 1500, prior=3)
    run_id = setup["run"]

    dead = kill_after(worker_env, run_id, 300)
    assert shell(worker_env, REAP, RUN_ID=str(run_id)) == 1
    failed = shell(worker_env, RUN_STATE, RUN_ID=str(run_id))
    assert failed["status"] == "failed"
    assert "4 times (resumed 3)" in failed["error_summary"]
    assert failed["interruptions"] == 3
    assert failed["added"] == dead["added"] == len(failed["ledger"])
    # What it did not reach counts as failed: the counts of the failed run add up.
    assert failed["failed"] == 1500 - failed["added"]
    assert counts_add_up(failed)
    assert failed["events"][-2:] == [Kind.INTERRUPTED, Kind.FINISHED]
    held = in_destination(sandbox, setup["name"])
    assert set(failed["ledger"]) <= held
    assert len(held - set(failed["ledger"])) <= RESEND_BOUND  # the resume bound at the kill

    # The next run sends what the ledger lacks, the batches in flight included.
    again = shell(worker_env, START_RUN, SYNC_ID=str(setup["sync"]))
    assert again["created"]
    finish_with_a_worker(worker_env)
    completed = shell(worker_env, RUN_STATE, RUN_ID=str(again["run"]))
    assert completed["status"] == "succeeded", completed["error_summary"]
    assert completed["added"] == 1500 - failed["added"]
    assert in_destination(sandbox, setup["name"]) == set(setup["members"])
    assert set(completed["ledger"]) == set(setup["members"])
    assert member_writes.count <= 1500 + RESEND_BOUND
