import pytest
from django.db import connection as db
from django.urls import reverse

from connections.models import Connection
from core.models import AuditEntry
from tests.base import make_connection

pytestmark = pytest.mark.django_db

BRAZE_FORM = {
    "kind": "braze",
    "name": "Braze US-03",
    "secret": "braze-rest-key-5555-9f9f",
    "instance": "US-03",
    "custom_endpoint": "",
    "membership_mode": "array",
    "array_attribute": "cohortsync_cohorts",
    "default_identifier": "external_id",
    "alias_label": "",
    "update_existing_only": "on",
    "objects_per_request": "75",
    "rate_limit_requests": "3000",
    "rate_limit_seconds": "3",
}


def _urls(pk):
    return {
        "list": ("get", reverse("connections:list")),
        "detail": ("get", reverse("connections:detail", args=[pk])),
        "create": ("get", reverse("connections:create") + "?kind=braze"),
        "edit": ("get", reverse("connections:edit", args=[pk])),
        "delete": ("get", reverse("connection_delete", args=[pk])),
        "test": ("post", reverse("connections:test", args=[pk])),
    }


READ = {"list", "detail"}


def test_every_connection_page_requires_login(client):
    pk = make_connection().pk
    for method, url in _urls(pk).values():
        response = getattr(client, method)(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_outsiders_get_404_on_every_connection_page(outsider_client):
    pk = make_connection().pk
    for method, url in _urls(pk).values():
        assert getattr(outsider_client, method)(url).status_code == 404, url


@pytest.mark.parametrize("client_fixture", ["marketer_client", "viewer_client"])
def test_marketers_and_viewers_read_connections_but_cannot_change_them(request, client_fixture):
    client = request.getfixturevalue(client_fixture)
    pk = make_connection().pk
    for name, (method, url) in _urls(pk).items():
        expected = 200 if name in READ else 403
        assert getattr(client, method)(url).status_code == expected, name
    assert client.post(reverse("connections:create"), BRAZE_FORM).status_code == 403
    assert Connection.objects.count() == 1


def test_admin_adds_a_braze_connection_and_it_is_audited(admin_client, admin_user):
    response = admin_client.post(reverse("connections:create"), BRAZE_FORM)
    connection = Connection.objects.get(name="Braze US-03")
    assert response.status_code == 302
    assert response["Location"] == reverse("connections:detail", args=[connection.pk])
    assert connection.get_config().rest_endpoint == "https://rest.iad-03.braze.com"
    assert connection.secret_hint == "9f9f"
    entry = AuditEntry.objects.get(action="connection.created")
    assert entry.actor == admin_user
    assert entry.target_id == str(connection.pk)
    assert entry.ip == "127.0.0.1"


def test_the_secret_is_never_rendered_back(admin_client):
    connection = make_connection(secret="braze-rest-key-abcd-7777")
    for url in (
        reverse("connections:list"),
        reverse("connections:detail", args=[connection.pk]),
        reverse("connections:edit", args=[connection.pk]),
    ):
        html = admin_client.get(url).content.decode()
        assert "braze-rest-key-abcd-7777" not in html
        assert "••••7777" in html


def test_leaving_the_secret_blank_keeps_it(admin_client):
    connection = make_connection(secret="braze-rest-key-keep-1234")
    form = {**BRAZE_FORM, "name": "Renamed", "secret": ""}
    response = admin_client.post(reverse("connections:edit", args=[connection.pk]), form)
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.name == "Renamed"
    from connections import crypto

    assert crypto.decrypt(connection.encrypted_secret) == "braze-rest-key-keep-1234"
    changed = AuditEntry.objects.get(action="connection.updated").details["changed"]
    assert "credentials" not in changed
    assert "name" in changed


def test_a_new_secret_replaces_the_old_and_resets_the_state(admin_client):
    connection = make_connection(secret="braze-rest-key-old0-1111")
    Connection.objects.filter(pk=connection.pk).update(state="healthy")
    form = {**BRAZE_FORM, "secret": "braze-rest-key-new0-2222"}
    admin_client.post(reverse("connections:edit", args=[connection.pk]), form)
    connection.refresh_from_db()
    assert connection.secret_hint == "2222"
    assert connection.state == Connection.State.UNTESTED


def test_the_raw_database_never_contains_a_credential(admin_client):
    admin_client.post(reverse("connections:create"), BRAZE_FORM)
    appsflyer = {
        "kind": "appsflyer",
        "name": "AF",
        "secret": "appsflyer-v2-token-zzzz-8888",
        "app_id": "com.example.app",
        "platform": "android",
        "api_host": "https://hq1.appsflyer.com",
        "batch_size": "10000",
        "rate_limit_requests": "100",
        "rate_limit_seconds": "1",
    }
    assert admin_client.post(reverse("connections:create"), appsflyer).status_code == 302
    with db.cursor() as cursor:
        tables = db.introspection.table_names(cursor)
        dump = []
        for table in tables:
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 -- names from introspection
            dump.extend(str(row) for row in cursor.fetchall())
    text = "\n".join(dump)
    assert Connection.objects.count() == 2
    assert "braze-rest-key-5555-9f9f" not in text
    assert "appsflyer-v2-token-zzzz-8888" not in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"instance": "custom", "custom_endpoint": "https://rest.x.braze.com/users/track"},
            "without a path",
        ),
        ({"default_identifier": "user_alias", "alias_label": ""}, "alias label"),
        ({"secret": ""}, "This field is required"),
        ({"name": "   "}, "required"),
        ({"objects_per_request": "100"}, "less than or equal to 75"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_saved(
    admin_client, change, message
):
    response = admin_client.post(reverse("connections:create"), {**BRAZE_FORM, **change})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Connection.objects.count() == 0
    assert AuditEntry.objects.filter(action="connection.created").count() == 0


def test_a_duplicate_name_is_refused(admin_client):
    make_connection(name="Braze US-03")
    response = admin_client.post(reverse("connections:create"), BRAZE_FORM)
    assert "already exists" in response.content.decode()
    assert Connection.objects.count() == 1


def test_only_one_appsflyer_connection_per_app(admin_client):
    make_connection("appsflyer", name="First", endpoint="https://hq1.appsflyer.com")
    form = {
        "kind": "appsflyer",
        "name": "Second",
        "secret": "appsflyer-v2-token-0000-1111",
        "app_id": "com.example.app",
        "platform": "android",
        "api_host": "https://hq1.appsflyer.com",
        "batch_size": "10000",
        "rate_limit_requests": "100",
        "rate_limit_seconds": "1",
    }
    response = admin_client.post(reverse("connections:create"), form)
    assert "one connection per app" in response.content.decode()
    assert Connection.objects.count() == 1


def test_deleting_needs_the_name_typed_and_is_audited(admin_client):
    connection = make_connection(name="Doomed")
    url = reverse("connection_delete", args=[connection.pk])
    response = admin_client.post(url, {"confirm_name": "wrong"})
    assert "not this connection" in response.content.decode()
    assert Connection.objects.filter(pk=connection.pk).exists()
    assert admin_client.post(url, {"confirm_name": "Doomed"}).status_code == 302
    assert not Connection.objects.filter(pk=connection.pk).exists()
    assert AuditEntry.objects.filter(action="connection.deleted", target_label="Doomed").exists()


def test_the_kind_chooser_is_shown_without_a_kind(admin_client):
    response = admin_client.get(reverse("connections:create"))
    html = response.content.decode()
    assert "?kind=braze" in html and "?kind=appsflyer" in html


def test_the_detail_page_tells_its_history_once_through_the_timeline(viewer_client):
    connection = make_connection()
    page = viewer_client.get(reverse("connections:detail", args=[connection.pk])).content.decode()
    timeline = reverse("syncs:connection_timeline", args=[connection.pk])
    assert f'hx-get="{timeline}"' in page
    # The timeline already lists every audit entry of the connection, with who did it.
    assert "<h2>History</h2>" not in page
