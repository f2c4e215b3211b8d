"""Fixtures for the API tests: a token client per role, and a connection and a sync (of the
shared `cohort`)."""

from typing import Any

import pytest

from cohorts.models import Cohort
from core.roles import Role
from tests.api.helpers import ApiClient, api_client_for
from tests.base import make_connection, make_user
from tests.factories import make_sync


@pytest.fixture
def admin_api(admin_user: Any) -> ApiClient:
    return api_client_for(admin_user)


@pytest.fixture
def marketer_api(marketer: Any) -> ApiClient:
    return api_client_for(marketer)


@pytest.fixture
def viewer_api(viewer: Any) -> ApiClient:
    return api_client_for(viewer)


@pytest.fixture
def outsider_api(db: Any) -> ApiClient:
    # Tokens are only created for users with a role; this one lost its role afterwards.
    user = make_user(Role.VIEWER)
    client = api_client_for(user)
    user.groups.clear()
    return client


@pytest.fixture
def connection(db: Any) -> Any:
    return make_connection(name="Braze prod", secret="braze-rest-key-0000-1a2b")


@pytest.fixture
def sync(cohort: Cohort, connection: Any) -> Any:
    return make_sync(cohort=cohort, connection=connection)
