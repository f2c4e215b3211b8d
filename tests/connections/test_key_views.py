"""Data-import key pages: access on every view, the one-time display, revoke and rotate."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connections.keys import KeyRefused, generate_import_key, verify
from connections.models import ImportKey
from core.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_and_raw(admin_user):
    return generate_import_key(partner="appsflyer", name="AppsFlyer prod", actor=admin_user)


@pytest.fixture
def key(key_and_raw):
    return key_and_raw[0]


def urls(key):
    return [
        reverse("connections:key_list"),
        reverse("connections:key_create"),
        reverse("connections:key_detail", args=[key.pk]),
        reverse("connections:key_revoke", args=[key.pk]),
        reverse("connections:key_rotate", args=[key.pk]),
    ]


def post_urls(key):
    return [
        reverse("connections:key_create"),
        reverse("connections:key_revoke", args=[key.pk]),
        reverse("connections:key_rotate", args=[key.pk]),
    ]


def raw_key_from(response) -> str:
    html = response.content.decode()
    start = html.index('value="csik_') + len('value="')
    return html[start : html.index('"', start)]


# Access


def test_every_key_page_sends_anonymous_visitors_to_log_in(key):
    client = Client()
    for url in urls(key):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_every_key_page_is_a_404_for_an_outsider(outsider_client, key):
    for url in urls(key):
        assert outsider_client.get(url).status_code == 404, url
    for url in post_urls(key):
        assert outsider_client.post(url, {"name": "x", "partner": "custom"}).status_code == 404


@pytest.mark.parametrize("role_client", ["marketer_client", "viewer_client"])
def test_every_key_page_is_forbidden_to_marketers_and_viewers(request, role_client, key):
    client = request.getfixturevalue(role_client)
    for url in urls(key):
        assert client.get(url).status_code == 403, url
    for url in post_urls(key):
        response = client.post(url, {"name": "x", "partner": "custom", "grace_hours": "0"})
        assert response.status_code == 403, url
    key.refresh_from_db()
    assert key.status() == "active"
    assert ImportKey.objects.count() == 1


def test_every_key_page_works_for_an_admin(admin_client, key):
    for url in urls(key):
        assert admin_client.get(url).status_code == 200, url


def test_detail_of_a_missing_key_is_a_404(admin_client):
    assert admin_client.get(reverse("connections:key_detail", args=[999])).status_code == 404


# List and detail


def test_list_shows_each_keys_facts(admin_client, admin_user, key):
    ImportKey.objects.filter(pk=key.pk).update(
        last_used_at=timezone.now(), expires_at=timezone.now() + timedelta(days=3)
    )
    html = admin_client.get(reverse("connections:key_list")).content.decode()
    for text in ["AppsFlyer prod", "AppsFlyer", key.prefix, admin_user.get_username()]:
        assert text in html
    assert 'class="badge active"' in html
    assert "Generate key" in html


def test_list_costs_the_same_queries_for_many_keys(
    admin_client, admin_user, django_assert_max_num_queries
):
    for number in range(20):
        generate_import_key(partner="custom", name=f"key {number}", actor=admin_user)
    with django_assert_max_num_queries(8):
        admin_client.get(reverse("connections:key_list"))


def test_detail_shows_the_audit_history(admin_client, key):
    html = admin_client.get(reverse("connections:key_detail", args=[key.pk])).content.decode()
    assert "Key generated" in html
    assert "Revoke" in html
    assert "Rotate" in html


# Generate


def test_generating_shows_the_key_exactly_once_and_never_again(admin_client):
    response = admin_client.post(
        reverse("connections:key_create"), {"partner": "amplitude", "name": "Amplitude EU"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = raw_key_from(response)
    html = response.content.decode()
    assert html.count(raw) == 1
    assert 'data-copy-target="import-key"' in html
    assert "js/copy.js" in html
    assert "will not be shown again" in html
    key = verify(raw, "amplitude")
    secret_part = raw.split("_", 2)[2]
    for url in urls(key):
        later = admin_client.get(url, follow=True).content.decode()
        assert secret_part not in later, url


def test_generated_key_gets_the_chosen_expiry_and_is_audited(admin_client, admin_user):
    before = timezone.now()
    admin_client.post(
        reverse("connections:key_create"),
        {"partner": "segment", "name": "Segment", "expires_in_days": "30"},
        REMOTE_ADDR="192.0.2.10",
    )
    key = ImportKey.objects.get()
    assert key.created_by == admin_user
    assert key.expires_at is not None
    assert timedelta(days=30) <= key.expires_at - before < timedelta(days=30, minutes=1)
    entry = AuditEntry.objects.get(action="import_key.generated")
    assert entry.actor == admin_user
    assert entry.ip == "192.0.2.10"


@pytest.mark.parametrize(
    "data",
    [
        {"partner": "appsflyer", "name": ""},
        {"partner": "appsflyer", "name": "   "},
        {"partner": "appsflyer", "name": "x" * 101},
        {"partner": "braze", "name": "Not an inbound partner"},
        {"partner": "appsflyer", "name": "ok", "expires_in_days": "0"},
        {"partner": "appsflyer", "name": "ok", "expires_in_days": "3651"},
        {"partner": "appsflyer", "name": "ok", "expires_in_days": "soon"},
    ],
)
def test_invalid_generate_input_rerenders_with_errors_and_writes_nothing(admin_client, data):
    response = admin_client.post(reverse("connections:key_create"), data)
    assert response.status_code == 200
    assert 'class="error"' in response.content.decode()
    assert "csik_" not in response.content.decode()
    assert not ImportKey.objects.exists()
    assert not AuditEntry.objects.filter(target_type="importkey").exists()


# Revoke


def test_revoke_asks_for_confirmation_before_doing_anything(admin_client, key):
    response = admin_client.get(reverse("connections:key_revoke", args=[key.pk]))
    assert "Revoke key" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None


def test_revoking_refuses_the_key_at_once_and_is_audited(admin_client, admin_user, key_and_raw):
    key, raw = key_and_raw
    response = admin_client.post(reverse("connections:key_revoke", args=[key.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("connections:key_detail", args=[key.pk])
    with pytest.raises(KeyRefused) as caught:
        verify(raw, "appsflyer")
    assert caught.value.reason == "revoked"
    entry = AuditEntry.objects.get(action="import_key.revoked")
    assert entry.actor == admin_user
    page = admin_client.get(response["Location"]).content.decode()
    assert f"Revoked {key.prefix}" in page
    assert 'class="badge revoked"' in page


def test_revoking_an_already_revoked_key_says_so(admin_client, key):
    admin_client.post(reverse("connections:key_revoke", args=[key.pk]))
    response = admin_client.post(reverse("connections:key_revoke", args=[key.pk]), follow=True)
    assert "already revoked" in response.content.decode()
    assert AuditEntry.objects.filter(action="import_key.revoked").count() == 1


# Rotate


def test_rotate_confirmation_offers_the_grace_windows_with_24_hours_preselected(admin_client, key):
    html = admin_client.get(reverse("connections:key_rotate", args=[key.pk])).content.decode()
    for label in ["1 hour", "24 hours", "72 hours", "7 days", "stops working now"]:
        assert label in html
    assert '<option value="24" selected>' in html


def test_rotating_shows_the_new_key_once_and_keeps_the_old_one_for_the_grace(
    admin_client, key_and_raw
):
    old, old_raw = key_and_raw
    before = timezone.now()
    response = admin_client.post(
        reverse("connections:key_rotate", args=[old.pk]), {"grace_hours": "72"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    new_raw = raw_key_from(response)
    assert response.content.decode().count(new_raw) == 1
    assert old_raw not in response.content.decode()
    new = verify(new_raw, "appsflyer")
    old.refresh_from_db()
    assert old.replaced_by == new
    assert timedelta(hours=72) <= old.expires_at - before < timedelta(hours=72, minutes=1)
    assert verify(old_raw, "appsflyer") == old
    assert AuditEntry.objects.filter(action="import_key.rotated", target_id=str(old.pk)).exists()
    assert AuditEntry.objects.filter(action="import_key.generated", target_id=str(new.pk)).exists()
    for url in urls(new):
        later = admin_client.get(url, follow=True).content.decode()
        assert new_raw not in later, url


def test_rotating_with_no_grace_refuses_the_old_key_at_once(admin_client, key_and_raw):
    old, old_raw = key_and_raw
    response = admin_client.post(
        reverse("connections:key_rotate", args=[old.pk]), {"grace_hours": "0"}
    )
    assert "has stopped working" in response.content.decode()
    with pytest.raises(KeyRefused):
        verify(old_raw, "appsflyer")


def test_invalid_grace_rerenders_with_errors_and_writes_nothing(admin_client, key):
    response = admin_client.post(
        reverse("connections:key_rotate", args=[key.pk]), {"grace_hours": "5000"}
    )
    assert response.status_code == 200
    assert 'class="error"' in response.content.decode()
    assert ImportKey.objects.count() == 1
    assert not AuditEntry.objects.filter(action="import_key.rotated").exists()


def test_rotating_a_revoked_key_is_refused_with_a_message(admin_client, key):
    admin_client.post(reverse("connections:key_revoke", args=[key.pk]))
    response = admin_client.post(
        reverse("connections:key_rotate", args=[key.pk]), {"grace_hours": "24"}, follow=True
    )
    assert "cannot be rotated" in response.content.decode()
    assert ImportKey.objects.count() == 1
    get = admin_client.get(reverse("connections:key_rotate", args=[key.pk]))
    assert get.status_code == 302


def test_the_detail_page_title_is_the_keys_name_in_plain_text(admin_client, key):
    html = admin_client.get(reverse("connections:key_detail", args=[key.pk])).content.decode()
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    assert title is not None
    assert title.group(1).strip() == f"{key.name} · Import keys · cohortsync"
