"""The demo's Amplitude path (cohortsync/demo_amplitude.py): seed_demo creates the source, the
pull and the sync, and nothing of what a download makes; the worker's first download (queued by
the dispatcher, against the simulator's demo project over real HTTP) fills the cohort, and the
real-time sync sends it to the simulated Braze."""

from urllib.parse import urlsplit

import pytest
from django.core.management import call_command

from cohorts.models import AmplitudeDownloadRequest, AmplitudePull, ImportRequest
from cohorts.pulls.dispatch import dispatch_due_pulls
from cohortsync.demo_amplitude import SOURCE_NAME
from connections import crypto
from connections.models import Connection
from connections.sandbox import DEMO_AMPLITUDE_API_KEY, DEMO_AMPLITUDE_SECRET_KEY
from connections.sandbox.demo_project import (
    ANONYMOUS_TRIAL_USERS,
    COUNTRIES,
    DEMO_AMPLITUDE_COHORT_ID,
    DEMO_AMPLITUDE_COHORT_NAME,
    PLANS,
    TRIAL_USERS,
    seed_demo_project,
)
from syncs.models import Sync, SyncRun
from tests.jobs import run_jobs, run_jobs_and_commit_hooks

pytestmark = pytest.mark.django_db

BRAZE_ARRAY = "cohortsync_cohorts"


@pytest.fixture
def demo_settings(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.DEV_ENV_FILE = tmp_path / "dev.env"
    settings.DEBUG = True
    return settings


def seed(sandbox):
    call_command("seed_demo", sandbox_port=urlsplit(sandbox.url).port)


def test_the_seed_creates_the_source_the_pull_and_the_sync_but_no_download(
    demo_settings, sandbox, capsys
):
    seed(sandbox)
    seed(sandbox)  # a second make run adds nothing
    source = Connection.objects.get(name=SOURCE_NAME)
    assert source.kind == "amplitude"
    assert source.get_config().api_host == sandbox.url
    # The simulator's key pair, encrypted like every credential: never in clear in the row.
    assert DEMO_AMPLITUDE_SECRET_KEY not in source.encrypted_secret
    assert DEMO_AMPLITUDE_SECRET_KEY not in str(source.config)
    assert DEMO_AMPLITUDE_API_KEY in crypto.decrypt(source.encrypted_secret)
    pull = AmplitudePull.objects.get()
    assert (pull.connection, pull.amplitude_cohort_id) == (source, DEMO_AMPLITUDE_COHORT_ID)
    assert (pull.cadence, pull.status) == (
        AmplitudePull.Cadence.DAILY,
        AmplitudePull.Status.WAITING,
    )
    assert pull.next_run_at is not None  # due: the dispatcher queues it at its next tick
    assert pull.cohort.name == DEMO_AMPLITUDE_COHORT_NAME
    # Nothing a download makes was written by the seed.
    assert pull.cohort.member_count == 0
    assert not ImportRequest.objects.filter(cohort=pull.cohort).exists()
    assert not AmplitudeDownloadRequest.objects.exists()
    sync = Sync.objects.get(cohort=pull.cohort, kind=Sync.Kind.MEMBERSHIP)
    assert (sync.connection.kind, sync.connection.name) == ("braze", "Braze sandbox")
    traits = Sync.objects.get(cohort=pull.cohort, kind=Sync.Kind.TRAITS)
    assert traits.cadence["kind"] == "realtime"
    assert traits.traits == [
        {"property": "plan", "attribute": "plan"},
        {"property": "country", "attribute": "home_country"},
    ]
    assert sync.cadence["kind"] == "realtime"
    assert sync.identifier_mapping == ["external_id"]
    assert not sync.runs.exists()
    assert capsys.readouterr().out.count(f"Created the {SOURCE_NAME} source connection.") == 1


@pytest.mark.usefixtures("rq_redis")
def test_the_first_download_runs_in_the_worker_and_the_sync_sends_the_cohort_to_braze(
    demo_settings, sandbox, django_capture_on_commit_callbacks
):
    seed_demo_project(sandbox.state)  # what `partner_sandbox --demo-project` serves
    seed(sandbox)
    run_jobs("default")  # the connection checks and the reading of the cohort list
    source = Connection.objects.get(name=SOURCE_NAME)
    assert source.state == Connection.State.HEALTHY
    listed = {entry["id"] for entry in source.amplitude_listing.cohorts}
    assert DEMO_AMPLITUDE_COHORT_ID in listed

    assert dispatch_due_pulls() == 1
    # The pull's job; its commit announces the change, which starts the real-time run.
    run_jobs_and_commit_hooks(django_capture_on_commit_callbacks, "runs")
    pull = AmplitudePull.objects.select_related("cohort").get()
    assert pull.status == AmplitudePull.Status.SUCCEEDED, pull.last_error
    members = len(TRIAL_USERS)
    assert (pull.last_rows, pull.last_skipped) == (
        members + ANONYMOUS_TRIAL_USERS,
        ANONYMOUS_TRIAL_USERS,
    )
    assert pull.cohort.member_count == members == pull.cohort.members.count()
    download = ImportRequest.objects.get(cohort=pull.cohort)
    assert (download.endpoint, download.status, download.added) == ("download", "applied", members)
    assert AmplitudeDownloadRequest.objects.filter(pull=pull).count() == 1

    run_jobs("runs")
    run = SyncRun.objects.get(sync__cohort=pull.cohort, sync__kind=Sync.Kind.MEMBERSHIP)
    trait_run = SyncRun.objects.get(sync__cohort=pull.cohort, sync__kind=Sync.Kind.TRAITS)
    # The trait sync sent each member's plan and country, as the file gave them.
    assert (trait_run.status, trait_run.added) == (SyncRun.Status.SUCCEEDED, members)
    first = sandbox.state.profile(f"external_id:demo-user-{TRIAL_USERS[0]:04d}")
    assert first is not None
    assert first["plan"] in PLANS and first["home_country"] in COUNTRIES
    assert run.trigger == SyncRun.Trigger.REALTIME
    assert (run.status, run.added) == (SyncRun.Status.SUCCEEDED, members)
    profile = sandbox.state.profile(f"external_id:demo-user-{TRIAL_USERS[0]:04d}")
    assert profile is not None
    assert DEMO_AMPLITUDE_COHORT_NAME in profile[BRAZE_ARRAY]
