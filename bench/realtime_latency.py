"""Real-time latency: from an inbound push accepted (201) to the simulated Braze updated.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cohortsync_bench \\
    REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/realtime_latency.py [--pushes 40] [--interval 0.5]

A partner cohort with a real-time sync to the simulated Braze (its own process), and one RQ
worker (`manage.py rqworker`, forking a work horse per job as in production) on the queue in
REDIS_URL. Each push adds one new identity through the inbound API view (Django's test client
in this process: the view, its transaction and its on-commit enqueue are the real ones; only
the HTTP server is left out). The clock starts when the 201 comes back and stops when the
simulator has the profile, polled every 5 ms. Target: p95 under 2 s. The split of the run's own
timestamps (queued → started → finished) shows where the time goes.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

PARTNER = "custom"
TARGET_P95_SECONDS = 2.0


def wait_for_profile(session: Any, url: str, identifier: str, timeout: float = 60) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        response = session.get(f"{url}/_sandbox/braze/profiles/external_id:{identifier}")
        if response.status_code == 200:
            return time.perf_counter()
        time.sleep(0.005)
    raise SystemExit(f"{identifier} never reached the simulator")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pushes", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between pushes")
    args = parser.parse_args()
    _common.setup_django()
    import django_rq
    import requests
    from django.test import Client

    from cohorts.models import Cohort, ImportRequest
    from connections.keys import generate_import_key, revoke_import_key
    from syncs.models import SyncRun
    from syncs.services import create_sync

    print(
        f"{args.pushes} pushes, {args.interval} s apart; {_common.machine()}",
        flush=True,
    )
    tag = uuid.uuid4().hex[:6]
    key, secret = generate_import_key(partner=PARTNER, name=f"bench {tag}", actor=None)
    cohort = Cohort.objects.create(
        name=f"bench realtime {tag}",
        source=Cohort.Source.PARTNER,
        partner=PARTNER,
        partner_cohort_id=f"bench-{tag}",
    )
    queue = django_rq.get_queue("runs")
    queue.empty()
    latencies: list[float] = []
    with _common.simulator() as url:
        connection = _common.make_connection("braze", url, f"bench realtime {tag}")
        connection.config = {**connection.config, "update_existing_only": False}
        connection.save(update_fields=["config"])
        sync = create_sync(
            name=f"bench realtime {tag}",
            cohort=cohort,
            connection=connection,
            identifier_mapping=["external_id"],
            cadence={"kind": "realtime"},
            actor=None,
        )
        worker = subprocess.Popen(
            [_common.PYTHON, "manage.py", "rqworker", "runs"],
            cwd=_common.ROOT,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(2)  # the worker registers itself
            client = Client(HTTP_HOST="127.0.0.1")
            session = requests.Session()
            for n in range(args.pushes):
                identifier = f"rt-{tag}-{n}"
                body = {
                    "client_secret": secret,
                    "cohort_id": cohort.partner_cohort_id,
                    "cohort_changes": [{"user_ids": [identifier]}],
                }
                response = client.post(
                    f"/partners/{PARTNER}/cohorts/users",
                    data=json.dumps(body),
                    content_type="application/json",
                )
                accepted = time.perf_counter()
                if response.status_code != 201:
                    refused = f"{response.status_code} {response.content[:300]!r}"
                    raise SystemExit(f"push refused: {refused}")
                latencies.append(wait_for_profile(session, url, identifier) - accepted)
                time.sleep(args.interval)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            queue.empty()
        runs = list(SyncRun.objects.filter(sync=sync, started_at__isnull=False))
        waits = [(run.started_at - run.queued_at).total_seconds() for run in runs if run.started_at]
        durations = [
            (run.finished_at - run.started_at).total_seconds()
            for run in runs
            if run.finished_at and run.started_at
        ]
        ImportRequest.objects.filter(key=key).delete()
        revoke_import_key(key=key, actor=None)
        _common.drop_cohort(cohort)
        connection.delete()

    p50, p95 = _common.percentile(latencies, 0.5), _common.percentile(latencies, 0.95)
    print()
    _common.table(
        [
            ["push accepted → simulator updated, p50, s", f"{p50:.2f}"],
            ["push accepted → simulator updated, p95, s", f"{p95:.2f}"],
            ["push accepted → simulator updated, max, s", f"{max(latencies):.2f}"],
            [f"runs: queued → started, p50, s ({len(runs)} runs)", f"{_median(waits):.2f}"],
            ["runs: started → finished, p50, s", f"{_median(durations):.2f}"],
        ],
        ["figure", "cohortsync"],
    )
    verdict = "PASS" if p95 < TARGET_P95_SECONDS else "FAIL"
    print(f"{verdict}: p95 {p95:.2f} s (target {TARGET_P95_SECONDS:.0f} s)")


def _median(values: list[float]) -> float:
    return _common.percentile(values, 0.5) if values else float("nan")


if __name__ == "__main__":
    main()
