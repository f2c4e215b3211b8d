"""Users of every role and make_* helpers shared by the tests.

Import the fixtures through `pytest_plugins = ["tests.base"]` (done in tests/conftest.py).
"""

import itertools
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client

from connections.partners import PARTNERS
from connections.sandbox.server import SandboxServer
from connections.services import create_connection
from core.roles import Role
from core.users import create_user

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


def make_connection(
    kind: str = "braze",
    *,
    name: str | None = None,
    endpoint: str = "https://rest.iad-01.braze.com",
    secret: str = "braze-rest-key-0000-1a2b",
    **config: Any,
) -> Any:
    """A connection saved through the service, as an admin would add it."""
    partner = PARTNERS[kind]
    return create_connection(
        kind=kind,
        name=name or f"{kind} {next(_counter)}",
        config=partner.parse_config({**partner.simulator_config(endpoint), **config}),
        secret=secret,
        actor=None,
    )


@pytest.fixture(autouse=True)
def _allow_simulator_endpoints(settings: Any) -> None:
    """The partner simulator speaks plain http on 127.0.0.1; tests of the default say so."""
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
