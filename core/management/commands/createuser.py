import getpass
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.roles import Role
from core.users import create_user


class Command(BaseCommand):
    help = "Create a user who logs in with their email, with one role."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--role", required=True, choices=[r.value for r in Role])
        parser.add_argument(
            "--password-file",
            type=Path,
            help="Read the password from this file's first line instead of prompting.",
        )

    def handle(
        self, *args: Any, email: str, role: str, password_file: Path | None, **options: Any
    ) -> None:
        if password_file is not None:
            try:
                password = password_file.read_text().splitlines()[0]
            except (OSError, IndexError) as exc:
                raise CommandError(f"Cannot read a password from {password_file}: {exc}") from None
        else:
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("The passwords do not match.")
        try:
            user = create_user(email=email, role=Role(role), password=password)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"Created {user.get_username()} with the {role} role.")
