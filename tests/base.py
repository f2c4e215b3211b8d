"""Users of every role, the partner simulator and the cohort most tests use, as fixtures;
make_user. The rows tests build on are made by tests/factories.py.

Import the fixtures through `pytest_plugins = ["tests.base"]` (done in tests/conftest.py).
"""

import itertools
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client

from cohorts.models import Cohort
from connections.sandbox.server import SandboxServer
from core.roles import Role
from core.users import create_user
from tests.factories import make_cohort

# Many tests import make_connection from here, next to make_user; it lives with the factories.
from tests.factories import make_connection as make_connection

PASSWORD = "correct horse battery staple 42"
_counter = itertools.count(1)


def make_user(role: Role | None, email: str | None = None) -> User:
    """A user with the role; role None makes an outsider (signed in, no role)."""
    email = email or f"{role.value if role else 'outsider'}{next(_counter)}@example.com"
    if role is None:
        return get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)
    return create_user(email=email, role=role, password=PASSWORD, check_password=False)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_user(db: Any) -> User:
    return make_user(Role.ADMIN)


@pytest.fixture
def marketer(db: Any) -> User:
    return make_user(Role.MARKETER)


@pytest.fixture
def viewer(db: Any) -> User:
    return make_user(Role.VIEWER)


@pytest.fixture
def outsider(db: Any) -> User:
    return make_user(None)


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    return client_for(admin_user)


@pytest.fixture
def marketer_client(marketer: User) -> Client:
    return client_for(marketer)


@pytest.fixture
def viewer_client(viewer: User) -> Client:
    return client_for(viewer)


@pytest.fixture
def outsider_client(outsider: User) -> Client:
    return client_for(outsider)


@pytest.fixture
def sandbox() -> Any:
    """The partner simulator over real HTTP on a free port."""
    server = SandboxServer(port=0).start()
    yield server
    server.stop()


@pytest.fixture
def cohort(db: Any) -> Cohort:
    """An empty manual cohort, "Churn risk"."""
    return make_cohort()


@pytest.fixture(autouse=True)
def _allow_simulator_endpoints(settings: Any) -> None:
    """The partner simulator speaks plain http on 127.0.0.1; tests of the default say so."""
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
