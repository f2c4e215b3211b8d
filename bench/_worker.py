"""One sync run in a process of its own, as an RQ work horse runs it: `_worker.py RUN_ID`.

Started by bench/_common.py's run_in_worker(), which reads this process's peak RSS from the
kernel. Prints one JSON line: the run's status and counters, wall time, and where the time went
(planning, paging the diff, the partner calls). The timers wrap module functions without
changing what they do.
"""

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import box_idle, context_switches

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cohortsync.settings")
os.environ.setdefault("DEBUG", "true")


def timed(spent: dict[str, float], name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def own_peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not wait4's ru_maxrss in the parent: Python starts the
    worker with vfork + exec, and the kernel carries the parent's high-water mark into the
    child's, so the figure was the benchmark's own (its reference client's 1M batches)."""
    status = Path("/proc/self/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def main(run_id: int) -> None:
    import django

    django.setup()
    from cohortsync.worker import warm_up
    from connections.admission_desk import AdmissionDesk
    from syncs.engine import diff, sending
    from syncs.engine import run as engine
    from syncs.models import SyncRun

    spent: dict[str, float] = {}
    engine.RunSender._plan = timed(spent, "plan", engine.RunSender._plan)  # type: ignore[method-assign]
    diff.page_to_add = timed(spent, "pages", diff.page_to_add)
    diff.page_to_remove = timed(spent, "pages", diff.page_to_remove)
    sending.BatchSender.finish = timed(spent, "send", sending.BatchSender.finish)  # type: ignore[method-assign]
    # The run's thread also waits for any answer when its window is full.
    sending.BatchSender.wait_for_an_answer = timed(  # type: ignore[method-assign]
        spent, "send", sending.BatchSender.wait_for_an_answer
    )
    # The Redis round trips the run's admission desks made, for the requests they admitted.
    desks = {"admission_trips": 0, "admitted": 0}
    close_desk = AdmissionDesk.close

    def counted_close(desk: AdmissionDesk) -> None:
        close_desk(desk)
        desks["admission_trips"] += desk.trips
        desks["admitted"] += desk.admitted

    AdmissionDesk.close = counted_close  # type: ignore[method-assign,assignment]
    # What the worker loads before it forks the work horse (cohortsync/worker.py).
    warm_up()
    started_at = time.time()
    started = time.perf_counter()
    cpu_started = time.process_time()
    times_started = os.times()
    switches_started = context_switches()
    idle_started = box_idle()
    if os.environ.get("BENCH_PROFILE"):
        # BENCH_PROFILE=<file>: a cProfile of the run, for `python -m pstats <file>`.
        import cProfile

        with cProfile.Profile() as profile:
            status = engine.run_sync(run_id)
        profile.dump_stats(os.environ["BENCH_PROFILE"])
    else:
        status = engine.run_sync(run_id)
    wall = time.perf_counter() - started
    finished_at = time.time()
    cpu = time.process_time() - cpu_started
    system = os.times().system - times_started.system
    switches = context_switches() - switches_started
    idle = box_idle() - idle_started
    run = SyncRun.objects.get(pk=run_id)
    figures = {
        "status": status,
        "seconds": wall,
        # Wall-clock times, for benchmarks that run several workers at once (budget_use.py).
        "started_at": started_at,
        "finished_at": finished_at,
        "planned": run.planned,
        "added": run.added,
        "removed": run.removed,
        "failed": run.failed,
        "skipped": run.skipped,
        "requests": run.requests,
        "retries": run.retries,
        "throttled_seconds": run.throttled_seconds,
        "error": run.error_summary,
        **{f"{name}_seconds": value for name, value in spent.items()},
        **desks,
        "peak_rss_mb": own_peak_rss_mb(),
        # CPU of the worker process (all its threads) during the run: the database's and the
        # simulator's are their own processes'.
        "cpu_seconds": cpu,
        # Of which in the kernel: sockets, and threads woken and put to sleep.
        "cpu_system_seconds": system,
        # Every thread's, put to sleep (waiting for a lock, a socket, a condition) or pre-empted.
        "context_switches": switches,
        # The box's cores left idle during the run (all cores): none left, the box is the bound.
        "box_idle_seconds": idle,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main(int(sys.argv[1]))
