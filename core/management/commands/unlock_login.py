from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core import login_throttle


class Command(BaseCommand):
    help = (
        "Lift a login lockout: forget the failed logins of an account (its email) or of an "
        "address (--address). Without arguments, list what is locked now."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("emails", nargs="*", help="accounts to unlock")
        parser.add_argument(
            "--address", action="append", default=[], help="an address to unlock (repeatable)"
        )

    def handle(self, *args: Any, emails: list[str], address: list[str], **options: Any) -> None:
        if not emails and not address:
            lockouts = login_throttle.current_lockouts()
            for lock in lockouts:
                self.stdout.write(
                    f"{lock.kind} {lock.value}: {lock.failures} failed logins, "
                    f"locked until {lock.until:%Y-%m-%d %H:%M:%S %Z}"
                )
            if not lockouts:
                self.stdout.write("No account or address is locked out.")
            return
        targets = [("username", email) for email in emails] + [("address", a) for a in address]
        for field, value in targets:
            cleared = login_throttle.unlock(**{field: value}, actor=None)
            if cleared:
                self.stdout.write(f"Unlocked {value}.")
            else:
                self.stdout.write(f"{value} had no failed logins to forget.")
