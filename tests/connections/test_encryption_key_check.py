"""Security issue #13, finding 8: a COHORTSYNC_ENCRYPTION_KEYS entry that is not a Fernet key
fails `manage.py check` (connections.E001), naming its position and never the key."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from connections.checks import check_encryption_keys

GOOD = Fernet.generate_key().decode()
BAD = "not-a-fernet-key-but-a-secret-0000"


def test_valid_keys_pass(settings):
    settings.COHORTSYNC_ENCRYPTION_KEYS = [GOOD, Fernet.generate_key().decode()]
    assert check_encryption_keys() == []
    call_command("check")


@pytest.mark.parametrize(
    ("keys", "position"),
    [
        ([BAD], "first"),
        ([GOOD, BAD], "second"),
        ([GOOD, GOOD, GOOD[:-2]], "third"),
        ([GOOD, GOOD, GOOD, "x"], "number 4"),
    ],
)
def test_an_invalid_key_is_a_check_error_naming_its_position(settings, keys, position):
    settings.COHORTSYNC_ENCRYPTION_KEYS = keys
    [error] = check_encryption_keys()
    assert error.id == "connections.E001"
    assert error.is_serious()
    assert f"The {position} key in COHORTSYNC_ENCRYPTION_KEYS is not a Fernet key" in error.msg


def test_manage_py_check_fails_without_showing_the_key(settings):
    settings.COHORTSYNC_ENCRYPTION_KEYS = [GOOD, BAD]
    with pytest.raises(SystemCheckError) as refused:
        call_command("check")
    assert "connections.E001" in str(refused.value)
    assert BAD not in str(refused.value)
    assert GOOD not in str(refused.value)
