"""One Amplitude pull in a process of its own, as an RQ work horse runs it:
`_pull_worker.py PULL_ID [PROPERTY ...]`.

Started by bench/amplitude_download.py through _common.run_in_worker. Runs `run_pull`, the
worker's own job, and prints one JSON line: the pull's outcome, the wall time and where it went
(the export's request and polls, the file's download, the apply: reading the file and replacing
the members in one transaction), the process's CPU and its own peak RSS (VmHWM).

PROPERTY names: the export asks for these user properties (props=1&propKeys=...), so the file
is the one the target names (members with two properties). The product asks props=0 until
members keep properties; the apply reads a wider file as any file, by its user_id column.
"""

import json
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _worker import own_peak_rss_mb, timed


def request_export_with(properties: list[str]):  # type: ignore[no-untyped-def]
    """Step 1 as `download.request_export` makes it, through the same egress-checked call, with
    the properties asked for."""
    from connections.partners.amplitude import download
    from connections.partners.http import call

    def request_export(adapter, cohort_id):  # type: ignore[no-untyped-def]
        authorization, secret = adapter.basic_auth()
        query = urlencode([("props", 1), *(("propKeys", name) for name in properties)])
        path = download.REQUEST_PATH.format(quote(cohort_id, safe=""))
        url = f"{adapter.config.base_url}{path}?{query}"
        response = call("GET", url, secret=secret, authorization=authorization)
        return str(response.body["request_id"])

    return request_export


def main(pull_id: int, properties: list[str]) -> None:
    import django

    django.setup()
    from cohorts import membership
    from cohorts.models import AmplitudePull
    from cohorts.pulls import run
    from cohortsync.worker import warm_up

    # What the worker loads before it forks the work horse (cohortsync/worker.py).
    warm_up()

    spent: dict[str, float] = {}
    if properties:
        run.request_export = request_export_with(properties)
    run._pending_request = timed(spent, "export_request", run._pending_request)
    run._wait_until_ready = timed(spent, "export_wait", run._wait_until_ready)
    run.download_file = timed(spent, "download", run.download_file)
    run.replace_members = timed(spent, "apply", run.replace_members)
    membership._stage = timed(spent, "stage", membership._stage)
    started = time.perf_counter()
    cpu_started = time.process_time()
    run.run_pull(pull_id)
    wall = time.perf_counter() - started
    pull = AmplitudePull.objects.select_related("cohort").get(pk=pull_id)
    figures = {
        "status": pull.status,
        "error": pull.last_error,
        "rows": pull.last_rows,
        "skipped": pull.last_skipped,
        "members": pull.cohort.member_count,
        "seconds": wall,
        **{f"{name}_seconds": value for name, value in spent.items()},
        "cpu_seconds": time.process_time() - cpu_started,
        "peak_rss_mb": own_peak_rss_mb(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
