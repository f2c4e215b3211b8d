"""Run queued RQ jobs inside the test process (use with the rq_redis fixture)."""

import django_rq

# A dotted path: django-rq annotates worker_class as a Worker subclass, and SimpleWorker is
# only a BaseWorker one.
SIMPLE_WORKER = "rq.worker.SimpleWorker"


def run_jobs(queue_name: str = "default") -> bool:
    """Drain the queue, then return. SimpleWorker, never the forking Worker: a forked horse
    would write to its own copy of the test database, and the test would see nothing."""
    worker = django_rq.get_worker(queue_name, worker_class=SIMPLE_WORKER)
    return bool(worker.work(burst=True))
