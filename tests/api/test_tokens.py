"""API tokens: created once and stored hashed, refused when missing, wrong, revoked or their user
is deactivated, and last-used written at most once a minute."""

import logging
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from api.models import ApiToken
from api.tokens import create_api_token, revoke_api_token, verify_api_token
from core.models import AuditEntry
from core.roles import Role
from tests.api.helpers import ApiClient
from tests.base import make_user

pytestmark = pytest.mark.django_db


def test_a_token_is_shown_once_and_only_its_hash_is_stored(marketer):
    token, raw = create_api_token(user=marketer, name="nightly export", actor=marketer)
    assert raw.startswith(token.prefix + "_")
    assert len(token.prefix) == len("cs_") + 8
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert raw not in str(stored)
    assert token.token_hash != raw
    entry = AuditEntry.objects.get(action="api_token.created")
    assert entry.details["prefix"] == token.prefix
    assert raw not in str(entry.details)


def test_a_token_acts_as_its_user(marketer):
    _, raw = create_api_token(user=marketer, name="t", actor=None)
    response = ApiClient(raw).get("/syncs")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token cs_x", "Bearer " + "x" * 5000],
)
def test_a_request_without_a_valid_token_gets_401_in_json(marketer, header, client):
    headers = {"Authorization": header} if header is not None else {}
    response = client.get("/api/v1/syncs", headers=headers)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_token_with_a_known_prefix_and_a_wrong_secret_is_refused(marketer):
    token, raw = create_api_token(user=marketer, name="t", actor=None)
    forged = token.prefix + "_" + "A" * 43
    assert len(forged) == len(raw)
    response = ApiClient(forged).get("/syncs")
    assert response.status_code == 401
    assert response.json()["message"] == "This API token is not valid."


def test_a_session_alone_is_not_enough_for_the_api(marketer_client):
    response = marketer_client.get("/api/v1/syncs")
    assert response.status_code == 401


def test_a_revoked_token_is_refused_on_the_next_request_and_the_revocation_is_audited(marketer):
    token, raw = create_api_token(user=marketer, name="t", actor=None)
    api = ApiClient(raw)
    assert api.get("/syncs").status_code == 200
    revoke_api_token(token=token, actor=marketer)
    response = api.get("/syncs")
    assert response.status_code == 401
    assert response.json()["message"] == "This API token has been revoked."
    entry = AuditEntry.objects.get(action="api_token.revoked")
    assert entry.actor == marketer
    assert entry.details["prefix"] == token.prefix


def test_revoking_twice_is_refused_and_audited_once(marketer):
    token, _ = create_api_token(user=marketer, name="t", actor=None)
    revoke_api_token(token=token, actor=None)
    with pytest.raises(ValidationError, match="already revoked"):
        revoke_api_token(token=token, actor=None)
    assert AuditEntry.objects.filter(action="api_token.revoked").count() == 1


def test_the_token_of_a_deactivated_user_is_refused(marketer):
    _, raw = create_api_token(user=marketer, name="t", actor=None)
    marketer.is_active = False
    marketer.save()
    response = ApiClient(raw).get("/syncs")
    assert response.status_code == 401
    assert "deactivated" in response.json()["message"]


def test_tokens_are_only_for_active_users_with_a_role(db):
    with pytest.raises(ValidationError, match="no role"):
        create_api_token(user=make_user(None), name="t", actor=None)
    inactive = make_user(Role.VIEWER)
    inactive.is_active = False
    inactive.save()
    with pytest.raises(ValidationError, match="deactivated"):
        create_api_token(user=inactive, name="t", actor=None)
    with pytest.raises(ValidationError):
        create_api_token(user=make_user(Role.VIEWER), name="  ", actor=None)
    assert not ApiToken.objects.exists()
    assert not AuditEntry.objects.filter(action="api_token.created").exists()


def test_last_used_is_written_at_most_once_a_minute(marketer):
    token, raw = create_api_token(user=marketer, name="t", actor=None)
    start = timezone.now()
    verify_api_token(raw, now=start)
    token.refresh_from_db()
    assert token.last_used_at == start
    verify_api_token(raw, now=start + timedelta(seconds=59))
    token.refresh_from_db()
    assert token.last_used_at == start
    later = start + timedelta(seconds=61)
    verify_api_token(raw, now=later)
    token.refresh_from_db()
    assert token.last_used_at == later


def test_tokens_keep_working_across_a_secret_key_rotation(marketer, settings):
    _, raw = create_api_token(user=marketer, name="t", actor=None)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = [old]
    assert verify_api_token(raw).user == marketer
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(Exception, match="not valid"):
        verify_api_token(raw)


def test_create_api_token_prints_the_token_alone_and_it_works(viewer, capsys):
    call_command("create_api_token", viewer.email.upper(), "--name", "cron job")
    raw = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(user=viewer)
    assert token.name == "cron job"
    assert raw.startswith(token.prefix + "_")
    assert ApiClient(raw).get("/cohorts").status_code == 200
    assert AuditEntry.objects.get(action="api_token.created").actor_label == "system"


def test_create_api_token_refuses_unknown_users_and_users_without_a_role(db):
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_token", "nobody@example.com")
    outsider = make_user(None)
    with pytest.raises(CommandError, match="no role"):
        call_command("create_api_token", outsider.email)
    assert not ApiToken.objects.exists()


def test_tokens_never_reach_the_logs(marketer, caplog):
    token, raw = create_api_token(user=marketer, name="t", actor=None)
    forged = token.prefix + "_" + "B" * 43
    with caplog.at_level(logging.DEBUG):
        for candidate in (raw, forged, "Bearer-less " + raw):
            ApiClient(candidate).get("/syncs")
            ApiClient(candidate).get("/import-keys")
        ApiClient(forged).post("/syncs", {"name": raw})
    assert caplog.records
    for secret in (raw, forged, raw.split("_", 2)[2]):
        assert secret not in caplog.text
