"""System checks: a COHORTSYNC_ENCRYPTION_KEYS entry that is not a Fernet key fails `manage.py
check` (and `check --deploy`, `migrate`, `runserver`: every command that runs the checks), rather
than the first credential read or write."""

from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import CheckMessage, Error

ORDINALS = ("first", "second", "third")


def _position(index: int) -> str:
    return ORDINALS[index] if index < len(ORDINALS) else f"number {index + 1}"


def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """One error per key that Fernet refuses, naming its position, never the key itself."""
    errors: list[CheckMessage] = []
    for index, key in enumerate(getattr(settings, "COHORTSYNC_ENCRYPTION_KEYS", [])):
        try:
            Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError):
            errors.append(
                Error(
                    f"The {_position(index)} key in COHORTSYNC_ENCRYPTION_KEYS is not a Fernet "
                    "key (32 url-safe base64-encoded bytes).",
                    hint='Generate one with `python -c "from cryptography.fernet import Fernet; '
                    'print(Fernet.generate_key().decode())"`; keys are separated by commas.',
                    id="connections.E001",
                )
            )
    return errors
