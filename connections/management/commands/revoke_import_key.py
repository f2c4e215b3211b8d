"""`manage.py revoke_import_key PREFIX`: revoke a data-import key by its prefix."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from connections.keys import revoke_import_key
from connections.models import ImportKey


class Command(BaseCommand):
    help = "Revoke the data-import key with this prefix (csik_...). Effective on the next request."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", help="the key's prefix as listed, e.g. csik_AbC123dEf456")

    def handle(self, *args: Any, **options: Any) -> None:
        prefix = options["prefix"].strip().rstrip("…")
        key = ImportKey.objects.filter(prefix=prefix).first()
        if key is None:
            raise CommandError(f"No data-import key has the prefix {prefix!r}.")
        try:
            revoke_import_key(key=key, actor=None)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(f"Revoked data-import key {key.prefix} ({key.name}, {key.partner}).")
