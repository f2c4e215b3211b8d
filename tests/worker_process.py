"""Run cohortsync code in real OS processes, against a database they share with the test.

pytest-django's test database lives inside the test's own transaction (or, on SQLite, in
memory), so no other process can see it. Tests that kill workers or race processes use a scratch
database instead: a migrated temporary SQLite file, or a scratch PostgreSQL database when
DATABASE_URL points at PostgreSQL. The test reads that database through subprocesses
(`shell`) or, when it must poll quickly, with one plain SQL query (`query`).
"""

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


@contextmanager
def scratch_database(tmp: Path, prefix: str) -> Iterator[dict[str, str]]:
    """The environment for subprocesses that share one migrated scratch database; dropped after."""
    server_url = os.environ.get("DATABASE_URL", "")
    scratch_db = ""
    if _is_postgres(server_url):
        import psycopg

        # DATABASE_URL's own database need not exist (pytest only makes its test_ copy).
        admin_url = urlsplit(server_url)._replace(path="/postgres").geturl()
        scratch_db = f"cohortsync_{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{scratch_db}"')
        database_url = urlsplit(server_url)._replace(path=f"/{scratch_db}").geturl()
    else:
        database_url = f"sqlite:///{tmp / 'db.sqlite3'}"
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(
        DEBUG="true",
        COHORTSYNC_VAR_DIR=str(tmp),
        MEDIA_ROOT=str(tmp / "media"),
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="cohortsync.settings",
        SECRET_KEY="subprocess-test-secret-key-that-is-long-enough-for-django-checks",
        # The partner simulator speaks plain http on 127.0.0.1.
        COHORTSYNC_ALLOW_INSECURE_ENDPOINTS="true",
    )
    manage(env, "migrate", "--no-input")
    try:
        yield env
    finally:
        if scratch_db:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{scratch_db}" WITH (FORCE)')


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, MANAGE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def shell(env: dict[str, str], code: str, **extra: str) -> Any:
    """Run `code` in `manage.py shell`; it prints one JSON document last, returned decoded."""
    out = manage({**env, **extra}, "shell", "--no-imports", "-c", code)
    return json.loads(out.strip().splitlines()[-1])


def start_shell(env: dict[str, str], code: str, **extra: str) -> subprocess.Popen[str]:
    """`manage.py shell -c code` in the background, in a process group of its own."""
    return subprocess.Popen(
        [sys.executable, MANAGE, "shell", "--no-imports", "-c", code],
        env={**env, **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
    )


def finish_shell(process: subprocess.Popen[str], timeout: float = 120) -> Any:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def start_worker(env: dict[str, str], log: Path, *, burst: bool = False) -> subprocess.Popen[str]:
    """A real, forking RQ worker on both queues (`runstack` starts one per queue); its output is
    appended to `log` (a pipe nobody reads could fill up and stall it).

    It gets a process group of its own so that `kill_group` reaches its work horse too: killing
    only the parent would leave the horse running the job.
    """
    with log.open("a") as output:
        return subprocess.Popen(
            [
                sys.executable,
                MANAGE,
                "rqworker",
                "runs",
                "default",
                *(["--burst"] if burst else []),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0,
        )


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the process and all its descendants at once, as if the machine died: no
    handler, no cleanup, no commit.

    RQ's work horse puts itself in a process group of its own (os.setpgrp), so killing the
    worker's group alone would leave the horse running the job. Everything is stopped first,
    then killed, so that no process sees another die and reacts.
    """
    pids = [process.pid, *_descendants(process.pid)]
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
    process.wait(timeout=30)


def _descendants(pid: int) -> list[int]:
    """Every live descendant of pid, read from /proc (Linux)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def wait_for_line(process: subprocess.Popen[str], marker: str, timeout: float = 120) -> None:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.5)
        if not ready:
            continue
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return
    pytest.fail(f"the process never logged {marker!r}; its stderr:\n{''.join(seen)}")


def query(env: dict[str, str], sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One read-only SQL query on the scratch database, without starting Django: fast enough
    to poll a worker's progress. Use %s placeholders; they are adapted for SQLite."""
    url = env["DATABASE_URL"]
    if _is_postgres(url):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=20)) as conn:
        return list(conn.execute(sql.replace("%s", "?"), params).fetchall())


# Run before the raced code: say "ready" once Django and the database connection are up, then
# wait for the shared start signal, so that the raced parts really start together.
_BARRIER = """
import os, pathlib, time
from django.db import connection
connection.ensure_connection()
pathlib.Path(os.environ["RACE_READY"]).touch()
while not os.path.exists(os.environ["RACE_GO"]):
    time.sleep(0.0005)
"""


def race(env: dict[str, str], tmp: Path, codes: list[str], timeout: float = 120) -> list[Any]:
    """Run each code in a process of its own, all released at the same moment; their JSON."""
    go = tmp / "race-go"
    go.unlink(missing_ok=True)
    ready = [tmp / f"race-ready-{n}" for n in range(len(codes))]
    for path in ready:
        path.unlink(missing_ok=True)
    processes = [
        start_shell(env, _BARRIER + code, RACE_READY=str(path), RACE_GO=str(go))
        for code, path in zip(codes, ready, strict=True)
    ]
    try:
        deadline = time.monotonic() + timeout
        while not all(path.exists() for path in ready):
            exited = [p for p in processes if p.poll() is not None]
            if exited:
                pytest.fail(f"a racer exited before the start: {exited[0].communicate()[1]}")
            if time.monotonic() > deadline:
                pytest.fail("the racers never got ready")
            time.sleep(0.01)
        go.touch()
        return [finish_shell(process, timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                kill_group(process)
