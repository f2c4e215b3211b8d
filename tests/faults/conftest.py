"""Fixtures of the fault tests: the simulator instrumented, a scratch database shared with
worker processes, and a Braze connection to the simulator."""

import uuid
from collections.abc import Iterator

import pytest

from cohorts.models import Cohort
from connections.models import Connection
from connections.partners.braze import simulator as braze_simulator
from tests.factories import make_cohort, make_simulator_connection
from tests.faults.simulator import MemberWrites
from tests.worker_process import scratch_database

# The workers' group commit in these tests: several checkpoints in a run of a few thousand, and a
# resume bound (tests/faults/test_worker_kills.py) well under the cohort.
CHECKPOINT_MEMBERS = 150


@pytest.fixture
def member_writes(monkeypatch: pytest.MonkeyPatch) -> MemberWrites:
    writes = MemberWrites()
    monkeypatch.setattr(braze_simulator, "_apply_attributes", writes)
    return writes


@pytest.fixture(scope="module")
def scratch_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with scratch_database(tmp_path_factory.mktemp("faults"), "faults") as env:
        yield env


@pytest.fixture
def worker_env(scratch_env, redis_url, rq_redis, sandbox, tmp_path) -> dict[str, str]:
    """The scratch database, this test's empty Redis, and the simulator's address."""
    return {
        **scratch_env,
        "REDIS_URL": redis_url,
        "SANDBOX_URL": sandbox.url,
        "WORKER_LOG": str(tmp_path / "worker.log"),
        "COHORTSYNC_CHECKPOINT_MEMBERS": str(CHECKPOINT_MEMBERS),
    }


@pytest.fixture
def cohort(db) -> Cohort:
    return make_cohort(name=f"Faults {uuid.uuid4().hex[:6]}")


@pytest.fixture
def simulated_braze(sandbox, rq_redis) -> Connection:
    return make_simulator_connection(sandbox)
