"""The worker loads the jobs' modules and the TLS context before its first fork
(cohortsync/worker.py), so a work horse starts with them instead of importing the engine again."""

import json
import os
import subprocess
import sys
from pathlib import Path

import django_rq
import pytest

from cohortsync import worker

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter: the test process has imported everything long ago.
PROBE = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cohortsync.settings")
import django
django.setup()
from core import egress_client
watched = ["syncs.jobs", "syncs.engine.run", "cohorts.jobs", "connections.jobs", "alerts.jobs",
           "psycopg"]
before = [name for name in watched if name in sys.modules]
contexts_before = egress_client.tls_context.cache_info().currsize
from cohortsync.worker import warm_up
warm_up()
print(json.dumps({
    "before": before,
    "after": [name for name in watched if name in sys.modules],
    "contexts": [contexts_before, egress_client.tls_context.cache_info().currsize],
}))
"""


def test_warm_up_loads_every_app_s_jobs_the_engine_and_the_tls_context() -> None:
    env = {**os.environ, "DEBUG": "true"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    # What a horse would have imported itself (psycopg too under SQLite: on PostgreSQL Django's
    # backend has loaded it already).
    assert [name for name in loaded["before"] if name != "psycopg"] == []
    assert loaded["after"] == [
        "syncs.jobs",
        "syncs.engine.run",
        "cohorts.jobs",
        "connections.jobs",
        "alerts.jobs",
        "psycopg",
    ]
    assert loaded["contexts"] == [0, 1]


@pytest.mark.usefixtures("rq_redis")
def test_the_worker_warms_up_before_it_works(monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(worker, "warm_up", lambda: calls.append("warm_up"))
    rq_worker = django_rq.get_worker("default", worker_class="cohortsync.worker.Worker")
    assert calls == []  # a Worker made elsewhere (the web's queue stats) loads nothing
    rq_worker.work(burst=True)
    assert calls == ["warm_up"]
