import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from core.models import AuditEntry
from core.roles import Role, user_role

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_createuser_reads_the_password_file_and_assigns_the_role(tmp_path):
    password_file = tmp_path / "pw"
    password_file.write_text("a long enough passphrase 9\n")
    call_command(
        "createuser", "Mia@Example.com", "--role", "marketer", "--password-file", str(password_file)
    )
    user = get_user_model().objects.get(username="mia@example.com")
    assert user.check_password("a long enough passphrase 9")
    assert user_role(user) == Role.MARKETER
    assert AuditEntry.objects.filter(action="user.created", actor_label="system").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", "a long enough passphrase 9", "valid email"),
        ("ok@example.com", "short", "too short"),
    ],
)
def test_createuser_refuses_bad_input_and_creates_nothing(tmp_path, email, password, message):
    password_file = tmp_path / "pw"
    password_file.write_text(password)
    with pytest.raises(CommandError, match=message):
        call_command("createuser", email, "--role", "viewer", "--password-file", str(password_file))
    assert get_user_model().objects.count() == 0


@pytest.mark.django_db
def test_createuser_refuses_a_duplicate_email(tmp_path):
    password_file = tmp_path / "pw"
    password_file.write_text("a long enough passphrase 9")
    call_command(
        "createuser", "a@example.com", "--role", "viewer", "--password-file", str(password_file)
    )
    with pytest.raises(CommandError, match="already exists"):
        call_command(
            "createuser", "A@example.com", "--role", "admin", "--password-file", str(password_file)
        )


def _production_env(**extra):
    dropped = ("DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        DEBUG="false",
        SECRET_KEY="x" * 10 + "production-secret-key-with-enough-entropy-0123456789",
        COHORTSYNC_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="cohortsync.example.com",
        SITE_URL="https://cohortsync.example.com",
    )
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def _manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=_production_env(COHORTSYNC_VAR_DIR=str(tmp_path)),
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "COHORTSYNC_ENCRYPTION_KEYS", "ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_a_secret(tmp_path, missing):
    env = _production_env(COHORTSYNC_VAR_DIR=str(tmp_path))
    env[missing] = ""
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert f"{missing}" in result.stderr
    assert "ImproperlyConfigured" in result.stderr


@pytest.mark.parametrize("site_url", [None, "http://localhost:8000", "http://127.0.0.1:8001"])
def test_check_deploy_warns_while_alert_links_point_at_this_machine(tmp_path, site_url):
    env = _production_env(COHORTSYNC_VAR_DIR=str(tmp_path), SITE_URL=site_url)
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "alerts.W001" in result.stderr + result.stdout
