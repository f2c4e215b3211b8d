from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from connections import crypto
from connections.models import Connection
from core import audit


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored credential with the first key of COHORTSYNC_ENCRYPTION_KEYS. "
        "Run after putting a new key first; then the old keys can be removed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        with transaction.atomic():
            for connection in Connection.objects.select_for_update().order_by("pk"):
                try:
                    connection.encrypted_secret = crypto.reencrypt(connection.encrypted_secret)
                except crypto.CredentialError as exc:
                    raise CommandError(f"{connection.name}: {exc}. Nothing was changed.") from None
                connection.save(update_fields=["encrypted_secret"])
                count += 1
            audit.record(
                actor=None,
                action="credentials.rotated",
                target_type="connection",
                details={"connections": count},
            )
        self.stdout.write(f"Re-encrypted the credentials of {count} connection(s).")
