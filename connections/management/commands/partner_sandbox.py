"""`manage.py partner_sandbox`: run the Braze + AppsFlyer simulator in the foreground."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connections.sandbox.demo_project import seed_demo_project
from connections.sandbox.server import SandboxServer


class Command(BaseCommand):
    help = "Serve the local Braze/AppsFlyer partner simulator until SIGTERM or SIGINT."
    # The simulator uses neither models nor URLs; it should start even when the project's checks
    # would fail (e.g. as a dependency of a broken local setup being debugged).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8765, help="TCP port (0 picks a free one)")
        parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
        parser.add_argument(
            "--demo-project",
            action="store_true",
            help="serve the demo's Amplitude project and its cohorts (make run does)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            server = SandboxServer(host=options["host"], port=options["port"])
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from exc
        if options["demo_project"]:
            seed_demo_project(server.state)

        def request_stop(signum: int, frame: FrameType | None) -> None:
            server.request_stop()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.stdout.write(f"Partner sandbox listening on {server.url}")
        self.stdout.flush()
        server.serve_forever()
        self.stdout.write("Partner sandbox stopped")
