"""RQ entry points for cohorts: thin, ids in, the services do the work."""

from typing import Any

from cohorts.csv_import import fail_interrupted_upload, import_csv_upload
from cohorts.inbound.amplitude.service import apply_batch
from cohorts.pulls.dispatch import dispatch_due_pulls as dispatch_pulls
from cohorts.pulls.listing import read_listing
from cohorts.pulls.run import run_pull
from cohorts.upload_reaper import reap_stuck_uploads as reap


def import_csv(upload_id: int) -> str:
    upload = import_csv_upload(upload_id)
    return upload.status if upload is not None else "skipped"


def import_csv_failed(job: Any, connection: Any, *exc_info: Any) -> None:
    """RQ failure callback: a job that timed out, or whose worker was killed and the job later
    found abandoned, must not leave its upload running for ever."""
    fail_interrupted_upload(job.args[0])


def reap_stuck_uploads() -> int:
    return reap()


def apply_amplitude_batch(batch_id: int) -> str:
    batch = apply_batch(batch_id)
    return batch.status if batch is not None else "skipped"


def run_amplitude_pull(pull_id: int) -> str:
    pull = run_pull(pull_id)
    return pull.status if pull is not None else "skipped"


def dispatch_due_pulls() -> int:
    return dispatch_pulls()


def list_amplitude_cohorts(connection_id: int) -> str:
    listing = read_listing(connection_id)
    return "skipped" if listing is None else listing.error or "listed"
