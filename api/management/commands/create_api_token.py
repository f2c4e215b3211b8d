"""`manage.py create_api_token EMAIL [--name NAME]`: print a new API token for a user, once."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.tokens import create_api_token


class Command(BaseCommand):
    help = (
        "Create an API token for the user with this email and print it on standard output "
        "(nothing else on that line). It is shown this once; only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email", help="the user's email (their login)")
        parser.add_argument("--name", default="command line", help="what the token is for")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip()
        user = get_user_model().objects.filter(username__iexact=email).first()
        if user is None:
            raise CommandError(f"No user has the email {email!r}.")
        try:
            _token, raw_token = create_api_token(user=user, name=options["name"], actor=None)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        # Only the token on stdout so that scripts can capture it with $(...).
        self.stdout.write(raw_token)
