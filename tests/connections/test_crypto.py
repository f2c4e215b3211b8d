import pytest
from cryptography.fernet import Fernet

from connections import crypto


def test_a_secret_round_trips_and_is_not_readable_in_its_token():
    token = crypto.encrypt("braze-rest-key-123456")
    assert "braze-rest-key-123456" not in token
    assert crypto.decrypt(token) == "braze-rest-key-123456"


def test_the_first_key_encrypts_and_every_key_decrypts(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.COHORTSYNC_ENCRYPTION_KEYS = [old]
    token = crypto.encrypt("s3cret-value-abcdef")
    settings.COHORTSYNC_ENCRYPTION_KEYS = [new, old]
    assert crypto.decrypt(token) == "s3cret-value-abcdef"
    rotated = crypto.reencrypt(token)
    settings.COHORTSYNC_ENCRYPTION_KEYS = [new]
    assert crypto.decrypt(rotated) == "s3cret-value-abcdef"
    with pytest.raises(crypto.CredentialError, match="cannot be decrypted"):
        crypto.decrypt(token)


def test_a_malformed_encryption_key_is_a_clear_error(settings):
    settings.COHORTSYNC_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(crypto.CredentialError, match="not a Fernet key"):
        crypto.encrypt("x")


def test_the_hint_shows_four_characters_only_of_long_secrets():
    assert crypto.hint("abcdefghijkl1a2b") == "1a2b"
    assert crypto.hint("short") == ""
