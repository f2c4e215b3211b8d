"""`manage.py create_import_key` and `revoke_import_key`, in process and as a real subprocess."""

import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from connections.keys import KeyRefused, generate_import_key, verify
from connections.models import ImportKey
from core.audit import SYSTEM_ACTOR
from core.models import AuditEntry

pytestmark = pytest.mark.django_db


def create(*args: str) -> str:
    out = StringIO()
    call_command("create_import_key", *args, stdout=out)
    return out.getvalue()


def test_create_prints_only_the_key_on_one_line():
    output = create("appsflyer", "CI key")
    assert output.endswith("\n")
    assert output.count("\n") == 1
    raw = output.strip()
    key = verify(raw, "appsflyer")
    assert key.name == "CI key"
    assert key.expires_at is None
    assert key.created_by is None


def test_create_is_audited_as_the_system_actor():
    raw = create("segment", "Nightly export").strip()
    entry = AuditEntry.objects.get(action="import_key.generated")
    assert entry.actor is None
    assert entry.actor_label == SYSTEM_ACTOR == "system"
    assert entry.target_id == str(verify(raw, "segment").pk)


def test_create_with_expires_in_sets_the_expiry():
    before = timezone.now()
    key = verify(create("mixpanel", "Mixpanel", "--expires-in", "7").strip(), "mixpanel")
    assert key.expires_at is not None
    assert timedelta(days=7) <= key.expires_at - before < timedelta(days=7, minutes=1)


@pytest.mark.parametrize("days", ["0", "-3", "3651"])
def test_create_refuses_an_out_of_range_expiry_and_writes_nothing(days):
    with pytest.raises(CommandError, match="between 1 and 3650"):
        create("custom", "Bad expiry", "--expires-in", days)
    assert not ImportKey.objects.exists()


def test_create_refuses_a_blank_name_and_writes_nothing():
    with pytest.raises(CommandError, match="needs a name"):
        create("custom", "   ")
    assert not ImportKey.objects.exists()


def test_create_refuses_an_unknown_partner():
    with pytest.raises(CommandError, match="invalid choice"):
        create("braze", "Not inbound")
    assert not ImportKey.objects.exists()


def test_revoke_revokes_the_key_by_prefix_and_is_audited_as_system():
    key, raw = generate_import_key(partner="custom", name="Old script", actor=None)
    out = StringIO()
    call_command("revoke_import_key", key.prefix, stdout=out)
    assert f"Revoked data-import key {key.prefix}" in out.getvalue()
    with pytest.raises(KeyRefused) as caught:
        verify(raw, "custom")
    assert caught.value.reason == "revoked"
    entry = AuditEntry.objects.get(action="import_key.revoked")
    assert entry.actor_label == "system"
    key.refresh_from_db()
    assert key.revoked_by is None


def test_revoke_of_an_unknown_prefix_fails_clearly():
    with pytest.raises(CommandError, match="No data-import key has the prefix 'csik_nope'"):
        call_command("revoke_import_key", "csik_nope")


def test_revoke_of_an_already_revoked_key_fails_clearly():
    key, _ = generate_import_key(partner="custom", name="Twice", actor=None)
    call_command("revoke_import_key", key.prefix, stdout=StringIO())
    with pytest.raises(CommandError, match="already revoked"):
        call_command("revoke_import_key", key.prefix)
    assert AuditEntry.objects.filter(action="import_key.revoked").count() == 1


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_create_command_in_a_subprocess_prints_one_line_that_verifies(tmp_path):
    # The test database lives in this process's memory, so the subprocess gets a database file
    # of its own, and the check that the key verifies runs against that file too.
    env = {
        **os.environ,
        "DEBUG": "true",
        "COHORTSYNC_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SECRET_KEY": "subprocess-test-secret-key-that-is-long-enough-for-django-checks",
        "DJANGO_SETTINGS_MODULE": "cohortsync.settings",
    }
    migrated = _manage("migrate", "--no-input", env=env)
    assert migrated.returncode == 0, migrated.stderr

    created = _manage("create_import_key", "appsflyer", "CI key", env=env)
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1
    assert created.stdout == lines[0] + "\n"
    raw = lines[0]
    assert raw.startswith("csik_")

    check = (
        "import os; from connections.keys import verify; "
        "print(verify(os.environ['RAW_IMPORT_KEY'], 'appsflyer').name)"
    )
    verified = _manage("shell", "--no-imports", "-c", check, env={**env, "RAW_IMPORT_KEY": raw})
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == "CI key"

    revoked = _manage("revoke_import_key", raw[:17], env=env)
    assert revoked.returncode == 0, revoked.stderr
    again = _manage("revoke_import_key", raw[:17], env=env)
    assert again.returncode != 0
    assert "already revoked" in again.stderr
