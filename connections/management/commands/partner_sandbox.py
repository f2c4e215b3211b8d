"""`manage.py partner_sandbox`: run the Braze + AppsFlyer simulator in the foreground."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connections.sandbox.cluster import SandboxCluster
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
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="processes serving the port (SO_REUSEPORT), for benchmarks: one answers about "
            "700 Braze requests/s. Rate limits and settings hold across them; a queue of "
            "injected statuses and Amplitude's download need one process",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        processes = options["processes"]
        if processes < 1:
            raise CommandError("--processes must be at least 1")
        if processes > 1 and options["demo_project"]:
            raise CommandError("--demo-project needs one process (Amplitude's download does)")
        server: SandboxServer | SandboxCluster
        try:
            if processes == 1:
                server = SandboxServer(host=options["host"], port=options["port"])
            else:
                server = SandboxCluster(options["host"], options["port"], processes).start()
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from exc
        if options["demo_project"] and isinstance(server, SandboxServer):  # one process
            seed_demo_project(server.state)

        def request_stop(signum: int, frame: FrameType | None) -> None:
            server.request_stop()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        in_processes = f" ({processes} processes)" if processes > 1 else ""
        self.stdout.write(f"Partner sandbox listening on {server.url}{in_processes}")
        self.stdout.flush()
        try:
            server.serve_forever()
        except RuntimeError as exc:  # a process of a multi-process simulator died
            raise CommandError(str(exc)) from exc
        self.stdout.write("Partner sandbox stopped")
