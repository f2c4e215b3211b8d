"""A connection's timeline: runs of its syncs, configuration and credential changes, credential
tests and refusals, newest first, each with who did it; paged with an "Older" link that neither
repeats nor skips an item, in a fixed number of queries; loaded by the connection's page."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection as db
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connections.models import ConnectionCheck
from connections.partners import PARTNERS
from connections.services import update_connection
from core import audit
from core.models import AuditEntry
from syncs.engine.outcome import refuse_connection
from syncs.models import SyncRun
from syncs.pages.connection_timeline import PAGE_SIZE, timeline_page
from tests.base import make_connection
from tests.factories import make_run, make_sync

pytestmark = pytest.mark.django_db


def url(connection, before=None):
    base = reverse("syncs:connection_timeline", args=[connection.pk])
    return f"{base}?before={before}" if before else base


def edit(connection, actor, *, secret=None, batch=50):
    config = PARTNERS["braze"].parse_config({**connection.config, "objects_per_request": batch})
    update_connection(
        connection=connection, name=connection.name, config=config, secret=secret, actor=actor
    )


def test_it_mixes_runs_edits_tests_and_refusals_newest_first_with_who(
    viewer_client, connection, admin_user, marketer
):
    sync = make_sync(connection=connection)
    now = timezone.now()
    SyncRun.objects.create(
        sync=sync,
        trigger=SyncRun.Trigger.MANUAL,
        status=SyncRun.Status.PARTIALLY_FAILED,
        requested_by=marketer,
        queued_at=now - timedelta(minutes=5),
        added=8,
        removed=1,
        failed=2,
    )
    SyncRun.objects.create(
        sync=sync,
        trigger=SyncRun.Trigger.SCHEDULE,
        status=SyncRun.Status.SUCCEEDED,
        queued_at=now - timedelta(minutes=4),
    )
    edit(connection, admin_user)
    edit(connection, admin_user, secret="braze-rest-key-new-9999", batch=50)
    ConnectionCheck.objects.create(
        connection=connection,
        requested_by=admin_user,
        status=ConnectionCheck.Status.OK,
        message="Braze accepted the REST API key.",
    )
    refuse_connection(connection, "Invalid API key")
    call_command("rotate_credentials", stdout=None)

    response = viewer_client.get(url(connection), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert "<html" not in response.content.decode()  # a fragment for htmx
    items = response.context["page"].items
    assert [(item.kind, item.title, item.actor) for item in items] == [
        ("credentials", "Credentials re-encrypted with a new encryption key", "system"),
        ("auth_failed", "Credentials refused during a run", "system"),
        ("check", "Credential test", admin_user.username),
        ("credentials", "Credentials replaced", admin_user.username),
        ("edit", "Configuration edited", admin_user.username),
        ("edit", "Connection created", "system"),
        ("run", f"Run {sync.runs.order_by('-id')[0].pk} of Churn → Braze", "system"),
        ("run", f"Run {sync.runs.order_by('id')[0].pk} of Churn → Braze", marketer.username),
    ]
    page = response.content.decode()
    assert "Changed: objects per request" in page
    assert "Invalid API key" in page
    assert "Run now · +8 -1, 2 failed" in page
    assert 'class="badge partially_failed">Partially failed' in page
    assert reverse("syncs:run_detail", args=[sync.pk, items[-1].id]) in page
    # The audit entries of the test itself are not shown twice: its ConnectionCheck is.
    assert not [item for item in items if "connection.check" in item.title]


def test_another_connections_history_is_not_shown(viewer_client, connection):
    other = make_connection(name="Other")
    make_run(make_sync(connection=other, name="Other sync"), status=SyncRun.Status.QUEUED)

    ConnectionCheck.objects.create(connection=other)
    items = viewer_client.get(url(connection)).context["page"].items
    assert [item.title for item in items] == ["Connection created"]


def test_older_pages_neither_repeat_nor_skip_items_even_at_the_same_time(
    viewer_client, connection, admin_user
):
    sync = make_sync(connection=connection)
    same_time = timezone.now() - timedelta(hours=1)
    SyncRun.objects.bulk_create(
        SyncRun(sync=sync, trigger=SyncRun.Trigger.SCHEDULE, status="succeeded", queued_at=at)
        for at in [same_time] * 20 + [same_time - timedelta(seconds=n) for n in range(1, 15)]
    )
    ConnectionCheck.objects.bulk_create(
        ConnectionCheck(connection=connection, requested_by=admin_user, created_at=same_time)
        for _ in range(10)
    )
    with transaction.atomic():
        for _ in range(10):
            entry = audit.record(actor=admin_user, action="connection.updated", target=connection)
            AuditEntry.objects.filter(pk=entry.pk).update(created_at=same_time)
    total = 20 + 14 + 10 + 10 + 1  # runs, checks, edits, and the creation

    seen = []
    before = None
    pages = 0
    while True:
        response = viewer_client.get(url(connection, before))
        page = response.context["page"]
        seen += [(item.source, item.id) for item in page.items]
        pages += 1
        if page.older is None:
            break
        assert len(page.items) == PAGE_SIZE
        assert f"?before={page.older}" in response.content.decode()
        before = page.older
    assert len(seen) == len(set(seen)) == total
    assert pages == -(-total // PAGE_SIZE)
    times = [item.at for item in timeline_page(connection).items]
    assert times == sorted(times, reverse=True)


def test_a_page_costs_the_same_queries_for_a_short_or_a_long_history(viewer_client, connection):
    sync = make_sync(connection=connection)

    def queries():
        with CaptureQueriesContext(db) as captured:
            assert viewer_client.get(url(connection)).status_code == 200
        return len(captured)

    few = queries()
    SyncRun.objects.bulk_create(
        SyncRun(sync=sync, trigger=SyncRun.Trigger.SCHEDULE, status="succeeded") for _ in range(80)
    )
    ConnectionCheck.objects.bulk_create(ConnectionCheck(connection=connection) for _ in range(40))
    assert queries() == few


@pytest.mark.parametrize(
    "before", ["yesterday", "1.2", "1.9.3", "-1.3.4", "99999999999999999999.3.1"]
)
def test_a_bad_older_position_is_refused_with_a_clear_error(viewer_client, connection, before):
    response = viewer_client.get(url(connection, before))
    assert response.status_code == 400
    assert "not one this page wrote" in response.content.decode()


def test_without_htmx_it_is_a_page_of_its_own(viewer_client, connection):
    page = viewer_client.get(url(connection)).content.decode()
    assert "<html" in page and "Timeline" in page


def test_outsiders_get_404_and_a_missing_connection_is_not_found(
    outsider_client, viewer_client, connection
):
    assert outsider_client.get(url(connection)).status_code == 404
    missing = reverse("syncs:connection_timeline", args=[connection.pk + 100])
    assert viewer_client.get(missing).status_code == 404


def test_it_only_answers_get(admin_client, connection):
    assert admin_client.post(url(connection)).status_code == 405


def test_the_connection_page_loads_it_with_htmx(viewer_client, connection):
    page = viewer_client.get(reverse("connections:detail", args=[connection.pk])).content.decode()
    assert f'hx-get="{url(connection)}" hx-trigger="load"' in page


def test_key_events_of_the_connections_partner_are_on_its_timeline(admin_user, viewer_client):
    from connections.keys import generate_import_key, revoke_import_key

    appsflyer = make_connection("appsflyer", name="AppsFlyer prod")
    key, _ = generate_import_key(partner="appsflyer", name="Audiences push", actor=admin_user)
    revoke_import_key(key=key, actor=admin_user)
    generate_import_key(partner="amplitude", name="Another partner's key", actor=admin_user)
    items = viewer_client.get(url(appsflyer)).context["page"].items
    keys = [(item.title, item.actor) for item in items if item.kind == "key"]
    assert keys == [
        ("Data-import key revoked", admin_user.get_username()),
        ("Data-import key generated", admin_user.get_username()),
    ]
    assert all("Audiences push" in item.text for item in items if item.kind == "key")
