"""Replace is atomic: a worker SIGKILLed while applying leaves the cohort exactly as it was.

The job runs in a real subprocess, against a database both processes can see: a migrated
temporary SQLite file, or a scratch PostgreSQL database when DATABASE_URL points at PostgreSQL
(the test database lives inside this process's transaction, invisible to any other).
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from cohorts.csv_import import CHUNK_ROWS, TEST_APPLY_PAUSE_ENV
from tests.worker_process import manage, scratch_database, shell, wait_for_line

OLD = sorted(f"old-{n:03}" for n in range(50))
# Three apply chunks, and ten of the old members named again.
NEW = sorted({f"new-{n:05}" for n in range(2 * CHUNK_ROWS + 2000)} | set(OLD[:10]))

SETUP = """
import json, os
from django.core.files.storage import default_storage
from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort, CsvUpload
cohort = Cohort.objects.create(name="Kill test", source="csv")
old = json.loads(os.environ["OLD_MEMBERS"])
apply_changes(cohort.pk, add=[Identity("external_id", value) for value in old])
uploads = [
    CsvUpload.objects.create(
        cohort=cohort, mode="replace", file_name=os.path.basename(path), stored_path=path,
        size_bytes=default_storage.size(path),
    ).pk
    for path in ("uploads/killed.csv", "uploads/retried.csv")
]
print(json.dumps({"cohort": cohort.pk, "uploads": uploads}))
"""

STATE = """
import json, os
from cohorts.models import Cohort, CohortMember, CsvUpload, CsvUploadRow
cohort = Cohort.objects.get(pk=os.environ["COHORT_ID"])
upload = CsvUpload.objects.get(pk=os.environ["UPLOAD_ID"])
print(json.dumps({
    "members": sorted(CohortMember.objects.filter(cohort=cohort).values_list("value", flat=True)),
    "member_count": cohort.member_count,
    "status": upload.status,
    "staged": CsvUploadRow.objects.filter(upload=upload).count(),
}))
"""


@pytest.fixture(scope="module")
def scratch_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with scratch_database(tmp_path_factory.mktemp("csv-kill"), "csv_kill") as env:
        yield env


def write_csv(env: dict[str, str], name: str, values: list[str]) -> None:
    path = Path(env["MEDIA_ROOT"]) / "uploads" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("external_id,gaid\n" + "".join(f"{v},g-{v}\n" for v in values))


def start_job(env: dict[str, str], upload_id: int) -> subprocess.Popen[str]:
    code = f"from cohorts.jobs import import_csv; import_csv({upload_id})"
    return subprocess.Popen(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "shell", "-c", code],
        env={**env, TEST_APPLY_PAUSE_ENV: "60"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_replace_killed_mid_apply_leaves_the_cohort_exactly_as_it_was(scratch_env):
    write_csv(scratch_env, "killed.csv", NEW)
    write_csv(scratch_env, "retried.csv", NEW)
    ids = shell(scratch_env, SETUP, OLD_MEMBERS=json.dumps(OLD))
    cohort_id = ids["cohort"]
    killed_id, retried_id = ids["uploads"]

    job = start_job(scratch_env, killed_id)
    try:
        # The first chunk's 5,000 members are written, uncommitted, when the hook pauses the job.
        wait_for_line(job, "applied chunk 1")
    finally:
        job.kill()  # SIGKILL: no handler, no cleanup, no commit
        job.wait(timeout=30)
    assert job.returncode == -9

    after_kill = shell(scratch_env, STATE, COHORT_ID=str(cohort_id), UPLOAD_ID=str(killed_id))
    assert after_kill["members"] == OLD
    assert after_kill["member_count"] == len(OLD)
    # Phase 1 had committed its staging; phase 2 rolled back.
    assert after_kill["status"] == "running"
    assert after_kill["staged"] == len(NEW)

    # RQ's failure callback for the abandoned job fails the upload and drops its staging.
    callback = (
        "from types import SimpleNamespace; from cohorts.jobs import import_csv_failed; "
        f"import_csv_failed(SimpleNamespace(args=[{killed_id}]), None)"
    )
    manage(scratch_env, "shell", "--no-imports", "-c", callback)
    failed = shell(scratch_env, STATE, COHORT_ID=str(cohort_id), UPLOAD_ID=str(killed_id))
    assert (failed["status"], failed["staged"], failed["members"]) == ("failed", 0, OLD)

    # The same file, not killed, does replace the members: the kill is what kept them.
    manage(
        scratch_env,
        "shell",
        "--no-imports",
        "-c",
        f"from cohorts.jobs import import_csv; import_csv({retried_id})",
    )
    retried = shell(scratch_env, STATE, COHORT_ID=str(cohort_id), UPLOAD_ID=str(retried_id))
    assert retried["status"] == "succeeded"
    assert retried["members"] == NEW
    assert retried["member_count"] == len(NEW)
