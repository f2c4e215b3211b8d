"""A/B of the sync engine: two (or more) versions of the code, or settings, each running a full
sync of the same cohort to the same simulated Braze, in turn (A B A B ...), so that the box's
drift during the session falls on every arm alike.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cohortsync_bench \\
    REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/ab_full_sync.py --arm before=../cohortsync-old --arm after=. \\
        [--members 200000] [--latency-ms 100] [--rounds 3]

An arm is NAME=CHECKOUT[,SETTING=VALUE...]: its run goes through CHECKOUT's bench/_worker.py
and so its code (a `git worktree add ../cohortsync-old <commit>` of this repository, whose
migrations must match this database's), with the settings given as its environment (for
example `--arm small=.,COHORTSYNC_CHECKPOINT_MEMBERS=500`). Each run is a fresh sync's first run
on one connection, so a whole-cohort send; the simulator is started once, at the latency given.
From the second run on, the connection's latest run sets where a run's window starts
(syncs/engine/window.py): the first arm's first round alone starts at 4, a median's outlier.
Differences within the spread of one arm's own runs are noise: on a 2-core box, ±3-10 %.
"""

import argparse
import os
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common


def parse_arm(text: str) -> tuple[str, Path, dict[str, str]]:
    """NAME=CHECKOUT[,SETTING=VALUE...] as (name, checkout, environment)."""
    name, _, rest = text.partition("=")
    checkout, *settings = rest.split(",")
    if not name or not checkout:
        raise argparse.ArgumentTypeError(f"An arm is NAME=CHECKOUT[,SETTING=VALUE...]: {text!r}")
    path = Path(checkout).resolve()
    if not (path / "bench" / "_worker.py").exists():
        raise argparse.ArgumentTypeError(f"{path} holds no bench/_worker.py")
    env = dict(setting.split("=", 1) for setting in settings)
    return name, path, env


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--arm", type=parse_arm, action="append", required=True)
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    _common.setup_django()
    print(
        f"{args.members:,} members to Braze; latency {args.latency_ms} ms; {args.rounds} rounds "
        f"of {len(args.arm)} arms; {_common.machine()}",
        flush=True,
    )
    tag = uuid.uuid4().hex[:6]
    cohort = _common.make_cohort(f"bench ab {tag}", args.members)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in args.arm}
    rows = []
    with _common.simulator() as url:
        if args.latency_ms:
            _common.control(url, "/faults", {"partner": "braze", "latency_ms": args.latency_ms})
        connection = _common.make_connection("braze", url, f"bench ab {tag}")
        try:
            for round_number in range(1, args.rounds + 1):
                for name, checkout, env in args.arm:
                    sync = _common.make_sync(
                        cohort, connection, name=f"ab {tag} {name} {round_number}"
                    )
                    figures = _common.run_in_worker(
                        _common.queue_run(sync), checkout=checkout, extra_env=env
                    )
                    if figures["status"] != "succeeded" or figures["added"] != args.members:
                        raise SystemExit(f"{name}: the run did not send everyone: {figures}")
                    results[name].append(figures)
                    rows.append(row(f"{name}, round {round_number}", args.members, [figures]))
                    print(*rows[-1], sep="  ", flush=True)
        finally:
            _common.drop_cohort(cohort)
            connection.delete()
    print()
    rows += [row(f"{name}, median", args.members, runs) for name, runs in results.items()]
    _common.table(rows, ["arm", "members/s", "wall, s", "worker CPU, s", "admitted / trips"])
    print(f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


def row(label: str, members: int, runs: list[dict[str, Any]]) -> list[str]:
    """An arm's figures: one run's, or the median of its runs."""
    seconds = statistics.median(run["seconds"] for run in runs)
    cpu = statistics.median(run["cpu_seconds"] for run in runs)
    trips = [run for run in runs if "admission_trips" in run]
    admitted = f"{trips[-1]['admitted']:,} / {trips[-1]['admission_trips']:,}" if trips else "—"
    return [label, f"{members / seconds:,.0f}", f"{seconds:.1f}", f"{cpu:.1f}", admitted]


if __name__ == "__main__":
    main()
