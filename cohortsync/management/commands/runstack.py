"""`python manage.py runstack`: web, worker, cron and the partner simulator, supervised."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cohortsync.stack import run_stack


class Command(BaseCommand):
    help = (
        "Run the development stack: web server, one RQ worker, the RQ cron process and the "
        "partner simulator, plus an embedded Valkey when REDIS_URL is not set. Ctrl+C stops it all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="web port (default 8000)")
        parser.add_argument(
            "--sandbox-port", type=int, default=8765, help="partner simulator port (default 8765)"
        )
        parser.add_argument(
            "--no-sandbox", action="store_true", help="don't start the partner simulator"
        )
        parser.add_argument(
            "--gunicorn", action="store_true", help="serve with gunicorn instead of runserver"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        code = run_stack(
            port=options["port"],
            sandbox_port=options["sandbox_port"],
            sandbox=not options["no_sandbox"],
            gunicorn=options["gunicorn"],
        )
        if code:
            raise SystemExit(code)
