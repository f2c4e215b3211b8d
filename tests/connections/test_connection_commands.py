import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from connections import crypto
from connections.models import Connection
from core.models import AuditEntry
from tests.base import make_connection

pytestmark = pytest.mark.django_db


def test_rotate_credentials_reencrypts_under_the_new_first_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.COHORTSYNC_ENCRYPTION_KEYS = [old]
    connection = make_connection(secret="braze-rest-key-rota-4321")
    settings.COHORTSYNC_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_credentials")
    settings.COHORTSYNC_ENCRYPTION_KEYS = [new]
    connection.refresh_from_db()
    assert crypto.decrypt(connection.encrypted_secret) == "braze-rest-key-rota-4321"
    assert AuditEntry.objects.filter(action="credentials.rotated", actor_label="system").exists()


def test_rotate_credentials_changes_nothing_when_a_secret_cannot_be_read(settings):
    settings.COHORTSYNC_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    good = make_connection(name="good")
    settings.COHORTSYNC_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    make_connection(name="lost")
    before = Connection.objects.get(pk=good.pk).encrypted_secret
    with pytest.raises(CommandError, match="Nothing was changed"):
        call_command("rotate_credentials")
    assert Connection.objects.get(pk=good.pk).encrypted_secret == before
