"""Test connection pressed while the job queue (Redis) is unreachable: the check waits as a row,
saying so, and runs once Redis is back (#13: nothing a user asked for is lost)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from connections.models import Connection, ConnectionCheck
from connections.queue import requeue_waiting_checks
from connections.sandbox import DEMO_BRAZE_KEY
from connections.services import request_connection_check
from tests.factories import make_connection
from tests.jobs import run_jobs
from tests.queues import queues_at

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


def test_a_check_asked_for_without_redis_waits_and_runs_once_redis_is_back(sandbox, settings):
    connection = make_connection(endpoint=sandbox.url, secret=DEMO_BRAZE_KEY)
    reachable = settings.RQ_QUEUES
    settings.RQ_QUEUES = queues_at("redis://127.0.0.1:1/0", timeout=5)
    check = request_connection_check(connection=connection, actor=None)
    check.refresh_from_db()
    assert check.status == ConnectionCheck.Status.QUEUED
    assert "unreachable" in check.message

    settings.RQ_QUEUES = reachable
    later = timezone.now() + timedelta(minutes=2)
    assert requeue_waiting_checks(now=later) == 1
    assert requeue_waiting_checks(now=later) == 0  # its job is there now
    run_jobs()
    check.refresh_from_db()
    connection.refresh_from_db()
    assert check.status == ConnectionCheck.Status.OK
    assert connection.state == Connection.State.HEALTHY
