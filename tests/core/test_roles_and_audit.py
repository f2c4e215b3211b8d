import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.urls import reverse

from core import audit
from core.models import AuditEntry
from core.roles import Role, user_role
from tests.base import make_connection, make_user

pytestmark = pytest.mark.django_db


def test_the_role_groups_exist_with_their_permissions():
    perms = {
        group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for group in Group.objects.prefetch_related("permissions__content_type")
    }
    assert "connections.manage_import_keys" in perms["admin"]
    assert "connections.manage_connections" in perms["admin"]
    assert "connections.manage_connections" not in perms["marketer"]
    assert perms["viewer"] == {
        "connections.view_connection",
        "cohorts.view_cohort",
        "syncs.view_sync",
    }


def test_a_user_without_a_group_has_no_role():
    assert user_role(make_user(None)) is None
    assert user_role(make_user(Role.MARKETER)) == Role.MARKETER


def test_the_home_page_requires_login_and_a_role(client, outsider_client, viewer_client):
    assert client.get(reverse("home")).status_code == 302
    assert outsider_client.get(reverse("home")).status_code == 404
    assert viewer_client.get(reverse("home")).status_code == 200


def test_login_with_email_and_password_works(client):
    user = make_user(Role.VIEWER, email="vera@example.com")
    from tests.base import PASSWORD

    response = client.post(reverse("login"), {"username": "vera@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("home")).context["user"] == user


def test_audit_record_refuses_to_write_outside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        # The django_db test transaction counts as atomic, so step outside it explicitly.
        transaction.get_connection().in_atomic_block = False
        try:
            audit.record(actor=None, action="x", target_type="y")
        finally:
            transaction.get_connection().in_atomic_block = True


def test_an_audit_entry_rolls_back_with_its_change():
    connection = make_connection(name="Rolled back")
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        audit.record(actor=None, action="connection.renamed", target=connection)
        1 / 0  # noqa: B018
    assert not AuditEntry.objects.filter(action="connection.renamed").exists()


def test_only_admins_see_the_audit_log(client, admin_client, marketer_client, outsider_client):
    url = reverse("audit_log")
    assert client.get(url).status_code == 302
    assert outsider_client.get(url).status_code == 404
    assert marketer_client.get(url).status_code == 403
    assert admin_client.get(url).status_code == 200


def test_the_audit_log_filters_by_action_actor_and_target(admin_client, admin_user):
    make_connection(name="Alpha")
    with transaction.atomic():
        audit.record(actor=admin_user, action="importkey.revoked", target_type="importkey")
    page = admin_client.get(reverse("audit_log"), {"action": "importkey"}).content.decode()
    assert "importkey.revoked" in page and "connection.created" not in page
    page = admin_client.get(reverse("audit_log"), {"actor": "system"}).content.decode()
    assert "connection.created" in page and "importkey.revoked" not in page
    page = admin_client.get(reverse("audit_log"), {"target_type": "connection"}).content.decode()
    assert "Alpha" in page


def test_a_bad_audit_filter_says_so(admin_client):
    response = admin_client.get(
        reverse("audit_log"), {"since": "2026-02-02", "until": "2026-01-01"}
    )
    assert "must not be after" in response.content.decode()
