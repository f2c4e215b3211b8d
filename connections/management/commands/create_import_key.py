"""`manage.py create_import_key PARTNER NAME [--expires-in DAYS]`: print a new key, once."""

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from connections.key_forms import MAX_EXPIRY_DAYS
from connections.keys import generate_import_key
from connections.models import ImportKey


class Command(BaseCommand):
    help = (
        "Generate a data-import key and print it on standard output (nothing else on that line). "
        "It is shown this once; only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("partner", choices=ImportKey.Partner.values)
        parser.add_argument("name", help="what the key is for, e.g. 'AppsFlyer production'")
        parser.add_argument(
            "--expires-in",
            type=int,
            metavar="DAYS",
            help=f"days until the key expires (1 to {MAX_EXPIRY_DAYS}); default: never",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["expires_in"]
        if days is not None and not 1 <= days <= MAX_EXPIRY_DAYS:
            raise CommandError(f"--expires-in must be between 1 and {MAX_EXPIRY_DAYS} days.")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            _key, raw_key = generate_import_key(
                partner=options["partner"], name=options["name"], expires_at=expires_at, actor=None
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        # Only the key on stdout so that scripts can capture it with $(...).
        self.stdout.write(raw_key)
