"""Every list page issues the same number of queries for 1 row as for 30.

Each page is first requested with one row of everything it lists (which also warms the
per-process caches), then 29 more rows are added, each with related rows of its own (its own
cohort, connection, actor...), so a missing select_related or prefetch shows as extra queries.
"""

from collections.abc import Callable
from datetime import timedelta
from itertools import count

import pytest
from django.core.cache import cache
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort, ImportRequest
from connections.keys import generate_import_key
from connections.models import Connection
from core.models import AuditEntry
from syncs.models import Sync, SyncRun, SyncRunExchange
from tests.base import make_connection
from tests.factories import make_sync

pytestmark = pytest.mark.django_db
_serial = count(1)


def queries(client: Client, url: str) -> int:
    cache.clear()  # the home page keeps its chart's totals for a minute: count that query too
    with CaptureQueriesContext(db) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


def assert_constant(client: Client, url: str, add_rows: Callable[[int], object]) -> None:
    add_rows(1)
    client.get(url)  # warm up
    with_one = queries(client, url)
    add_rows(29)
    assert queries(client, url) == with_one


def new_sync(**fields) -> Sync:
    """A sync row of its own cohort and connection unless given."""
    return make_sync(name=f"Sync {next(_serial):04d}", cadence="hourly", orm=True, **fields)


def test_the_home_page(viewer_client):
    now = timezone.now()

    def add_rows(n):
        for _ in range(n):
            sync = new_sync(
                last_run_status=SyncRun.Status.FAILED,
                last_run_at=now,
                last_run_summary="+1 -0, 1 failed",
                next_run_at=now + timedelta(hours=1),
            )
            SyncRun.objects.create(
                sync=sync, trigger="schedule", status="failed", finished_at=now, added=1
            )
            SyncRun.objects.create(
                sync=sync,
                trigger="schedule",
                status="succeeded",
                finished_at=now - timedelta(days=next(_serial) % 20),
                removed=2,
            )
            SyncRun.objects.create(sync=sync, trigger="schedule", status="held")
            Cohort.objects.filter(pk=sync.cohort_id).update(updated_at=now - timedelta(days=9))
            paused = new_sync(status=Sync.Status.NEEDS_ATTENTION)
            Connection.objects.filter(pk=paused.connection_id).update(
                state=Connection.State.NEEDS_ATTENTION, last_error="401"
            )

    assert_constant(viewer_client, reverse("home"), add_rows)


def test_the_sync_list(viewer_client):
    assert_constant(
        viewer_client,
        reverse("syncs:sync_list"),
        lambda n: [new_sync(last_run_status="succeeded") for _ in range(n)],
    )


def test_a_sync_page_and_its_run_history(viewer_client, marketer):
    sync = new_sync()

    def add_runs(n):
        for _ in range(n):
            SyncRun.objects.create(
                sync=sync,
                trigger="manual",
                status="succeeded",
                requested_by=marketer,
                started_at=timezone.now(),
                finished_at=timezone.now(),
                added=3,
            )

    url = reverse("syncs:sync_detail", args=[sync.pk])
    assert_constant(viewer_client, url, add_runs)
    assert_constant(viewer_client, url + "?status=succeeded&trigger=manual", add_runs)


def test_a_run_page_and_its_requests_and_answers(viewer_client):
    sync = new_sync()
    run = SyncRun.objects.create(sync=sync, trigger="manual", status="failed")

    def add_exchanges(n):
        SyncRunExchange.objects.bulk_create(
            SyncRunExchange(
                run=run, batch=1, attempt=1, status=503, method="POST", path="/users/track"
            )
            for _ in range(n)
        )

    assert_constant(
        viewer_client, reverse("syncs:run_detail", args=[sync.pk, run.pk]), add_exchanges
    )


def test_the_cohort_list(viewer_client):
    def add_cohorts(n):
        for _ in range(n):
            cohort = Cohort.objects.create(name=f"Cohort {next(_serial):04d}", source="manual")
            new_sync(cohort=cohort)
            new_sync(cohort=cohort)

    assert_constant(viewer_client, reverse("cohorts:cohort_list"), add_cohorts)


def test_a_cohorts_members(viewer_client):
    cohort = Cohort.objects.create(name="Big", source="manual")

    def add_members(n):
        start = next(_serial) * 1000
        apply_changes(
            cohort.pk,
            add=[
                Identity("external_id", f"user-{start + i}", extras=(("braze_id", f"b{i}"),))
                for i in range(n)
            ],
            update_extras=True,
        )

    assert_constant(viewer_client, reverse("cohorts:cohort_members", args=[cohort.pk]), add_members)


def test_the_connection_list(viewer_client):
    def add_connections(n):
        for _ in range(n):
            make_connection(name=f"Braze {next(_serial):04d}")

    assert_constant(viewer_client, reverse("connections:list"), add_connections)


def test_the_audit_log(admin_client, marketer):
    def add_entries(n):
        AuditEntry.objects.bulk_create(
            AuditEntry(
                actor=marketer,
                actor_label=marketer.get_username(),
                action="sync.created",
                target_type=f"type{next(_serial)}",
                target_id="1",
                target_label="Churn → Braze",
                details={"name": "Churn → Braze"},
            )
            for _ in range(n)
        )

    assert_constant(admin_client, reverse("audit_log"), add_entries)


def test_the_import_key_list(admin_client, admin_user):
    def add_keys(n):
        for _ in range(n):
            generate_import_key(partner="custom", name=f"Key {next(_serial)}", actor=admin_user)

    assert_constant(admin_client, reverse("connections:key_list"), add_keys)


def test_the_import_request_log(admin_client, admin_user):
    key, _ = generate_import_key(partner="custom", name="Feed", actor=admin_user)

    def add_requests(n):
        for _ in range(n):
            cohort = Cohort.objects.create(name=f"Pushed {next(_serial)}", source="manual")
            ImportRequest.objects.create(
                key=key,
                partner="custom",
                endpoint="cohorts/users",
                cohort=cohort,
                added=10,
                status=ImportRequest.Status.APPLIED,
                http_status=201,
            )

    assert_constant(admin_client, reverse("cohorts:import_requests"), add_requests)
