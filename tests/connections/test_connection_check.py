""" "Test connection": a real RQ worker calls the partner simulator over HTTP."""

import socket

import pytest
import requests
from django.urls import reverse

from connections.models import Connection, ConnectionCheck
from connections.sandbox import DEMO_APPSFLYER_TOKEN, DEMO_BRAZE_KEY
from core.models import AuditEntry
from tests.base import make_connection
from tests.jobs import run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rq_redis")]


def _test(admin_client, connection):
    response = admin_client.post(
        reverse("connections:test", args=[connection.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "Testing the connection" in response.content.decode()
    run_jobs()
    check = ConnectionCheck.objects.get(connection=connection)
    fragment = admin_client.get(reverse("connections:check", args=[connection.pk, check.pk]))
    connection.refresh_from_db()
    return check, fragment.content.decode(), connection


def test_a_good_braze_key_marks_the_connection_healthy(admin_client, sandbox):
    connection = make_connection(endpoint=sandbox.url, secret=DEMO_BRAZE_KEY)
    check, html, connection = _test(admin_client, connection)
    assert check.status == ConnectionCheck.Status.OK
    assert connection.state == Connection.State.HEALTHY
    assert connection.last_checked_at is not None
    assert "Credentials accepted" in html
    assert 'id="connection-state" hx-swap-oob="true"' in html
    assert AuditEntry.objects.filter(action="connection.checked", details__outcome="ok").exists()


def test_a_refused_braze_key_needs_attention_with_the_partner_message(admin_client, sandbox):
    connection = make_connection(endpoint=sandbox.url, secret="braze-key-nobody-knows-0000")
    check, html, connection = _test(admin_client, connection)
    assert check.status == ConnectionCheck.Status.REFUSED
    assert connection.state == Connection.State.NEEDS_ATTENTION
    assert connection.last_error == check.message
    assert "Invalid API key" in connection.last_error
    assert "braze-key-nobody-knows-0000" not in html


def test_a_braze_key_without_users_track_permission_is_refused(admin_client, sandbox):
    requests.post(
        f"{sandbox.url}/_sandbox/braze/keys",
        json={"key": "braze-key-no-perms-000000", "permissions": []},
        timeout=5,
    ).raise_for_status()
    connection = make_connection(endpoint=sandbox.url, secret="braze-key-no-perms-000000")
    check, _, connection = _test(admin_client, connection)
    assert check.status == ConnectionCheck.Status.REFUSED
    assert "Access Denied" in check.message


def test_a_good_appsflyer_token_marks_the_connection_healthy(admin_client, sandbox):
    connection = make_connection("appsflyer", endpoint=sandbox.url, secret=DEMO_APPSFLYER_TOKEN)
    check, _, connection = _test(admin_client, connection)
    assert check.status == ConnectionCheck.Status.OK
    assert connection.state == Connection.State.HEALTHY


def test_a_revoked_appsflyer_token_needs_attention(admin_client, sandbox):
    requests.post(
        f"{sandbox.url}/_sandbox/appsflyer/tokens/revoke",
        json={"token": DEMO_APPSFLYER_TOKEN},
        timeout=5,
    ).raise_for_status()
    connection = make_connection("appsflyer", endpoint=sandbox.url, secret=DEMO_APPSFLYER_TOKEN)
    check, _, connection = _test(admin_client, connection)
    assert check.status == ConnectionCheck.Status.REFUSED
    assert connection.state == Connection.State.NEEDS_ATTENTION
    assert check.message == "Forbidden"


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_network_error_says_so_and_does_not_mark_the_key_bad(admin_client):
    connection = make_connection(endpoint=f"http://127.0.0.1:{_closed_port()}")
    Connection.objects.filter(pk=connection.pk).update(state=Connection.State.HEALTHY)
    check, html, connection = _test(admin_client, connection)
    assert check.status == ConnectionCheck.Status.UNREACHABLE
    assert "Could not reach 127.0.0.1" in check.message
    assert connection.state == Connection.State.HEALTHY
    assert "Partner unreachable" in html


def test_a_partner_outage_is_unreachable_not_refused(admin_client, sandbox):
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"partner": "braze", "statuses": [503]}, timeout=5
    ).raise_for_status()
    connection = make_connection(endpoint=sandbox.url, secret=DEMO_BRAZE_KEY)
    check, _, connection = _test(admin_client, connection)
    assert check.status == ConnectionCheck.Status.UNREACHABLE
    assert connection.state == Connection.State.UNTESTED


def test_a_check_runs_once_even_if_its_job_is_delivered_twice(admin_client, sandbox):
    from connections.jobs import check_connection

    connection = make_connection(endpoint=sandbox.url, secret=DEMO_BRAZE_KEY)
    check, _, _ = _test(admin_client, connection)
    assert check_connection(check.pk) == "skipped"
    assert AuditEntry.objects.filter(action="connection.checked").count() == 1


def test_the_page_shows_the_state_once_and_the_poll_replaces_it_and_the_messages(
    admin_client, sandbox
):
    connection = make_connection(endpoint=sandbox.url, secret=DEMO_BRAZE_KEY)
    _, html, connection = _test(admin_client, connection)
    assert html.count('id="connection-state"') == 1  # out of band, beside the outcome
    assert '<ul class="messages" id="messages" hx-swap-oob="true"></ul>' in html
    page = admin_client.get(reverse("connections:detail", args=[connection.pk])).content.decode()
    assert page.count('id="connection-state"') == 1
    assert page.count(">Healthy</span>") == 1
    assert "hx-swap-oob" not in page


def test_a_new_key_leaves_no_word_of_the_old_keys_test(admin_client, sandbox):
    from tests.connections.test_connection_views import BRAZE_FORM

    connection = make_connection(endpoint=sandbox.url, secret="braze-key-nobody-knows-0000")
    _, _, connection = _test(admin_client, connection)
    assert connection.state == Connection.State.NEEDS_ATTENTION
    form = {**BRAZE_FORM, "name": connection.name, "secret": DEMO_BRAZE_KEY}
    form |= {"instance": "custom", "custom_endpoint": sandbox.url}
    saved = admin_client.post(reverse("connections:edit", args=[connection.pk]), form)
    assert saved.status_code == 302
    page = admin_client.get(saved["Location"]).content.decode()
    assert "Not tested yet" in page
    assert "checked" not in page  # not "Not tested yet · checked 0 minutes ago"
    assert "Invalid API key" not in page and "Credentials refused" not in page
    assert '<div id="check-result"></div>' in page
    # Tested again, the new key's outcome shows.
    admin_client.post(reverse("connections:test", args=[connection.pk]), HTTP_HX_REQUEST="true")
    run_jobs()
    page = admin_client.get(saved["Location"]).content.decode()
    assert "Credentials accepted" in page and ">Healthy</span>" in page
