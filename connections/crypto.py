"""Credentials at rest: Fernet tokens under COHORTSYNC_ENCRYPTION_KEYS.

The first key encrypts and every key decrypts, so a new key can be put first and old tokens
re-encrypted with `manage.py rotate_credentials` before the old key is dropped.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialError(Exception):
    """A stored credential cannot be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise CredentialError(
            "COHORTSYNC_ENCRYPTION_KEYS holds a key that is not a Fernet key "
            "(32 url-safe base64-encoded bytes)"
        ) from exc


def _current() -> MultiFernet:
    return _fernet(tuple(settings.COHORTSYNC_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise CredentialError(
            "A stored credential cannot be decrypted with COHORTSYNC_ENCRYPTION_KEYS; "
            "was a key removed before `rotate_credentials` ran?"
        ) from exc


def reencrypt(token: str) -> str:
    """The same secret under the first (current) key."""
    try:
        return _current().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise CredentialError("A stored credential cannot be decrypted for rotation") from exc


def hint(secret: str) -> str:
    """The last four characters, shown as ••••1a2b; nothing for secrets too short to hint at."""
    return secret[-4:] if len(secret) >= 12 else ""
