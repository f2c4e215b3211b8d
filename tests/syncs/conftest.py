"""Fixtures of the sync tests: a Braze connection to the partner simulator."""

import pytest

from connections.models import Connection
from connections.sandbox.server import SandboxServer
from tests.factories import make_simulator_connection


@pytest.fixture
def connection(db: None, sandbox: SandboxServer) -> Connection:
    """A Braze connection, "Braze sandbox", to the simulator; it creates profiles on first write."""
    return make_simulator_connection(sandbox)


@pytest.fixture
def checkpoint_every_batch(settings) -> None:
    """Each answered batch is its own checkpoint (no group commits): for the tests that act
    between two checkpoints of a small run."""
    settings.COHORTSYNC_CHECKPOINT_MEMBERS = 1
