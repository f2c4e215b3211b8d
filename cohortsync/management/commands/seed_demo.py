import uuid
from typing import Any

import django_rq
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort
from cohortsync.demo import DEMO_EMAIL, demo_password, simulator_credentials, write_dev_env
from cohortsync.demo_amplitude import request_first_listing, seed_amplitude_demo
from cohortsync.demo_traits import seed_trait_sync
from connections.models import Connection, ConnectionCheck
from connections.partners import PARTNERS
from connections.sandbox import DEMO_APPSFLYER_TOKEN, DEMO_BRAZE_KEY
from connections.services import create_connection, request_connection_check
from core.roles import Role
from core.users import create_user
from syncs.models import Sync
from syncs.services import create_sync


class Command(BaseCommand):
    help = (
        "Seed, idempotently, a demo admin, two sandbox destinations with a cohort synced to "
        "both, subscribers with properties and their trait sync to Braze, an Amplitude sandbox "
        "source whose pulled cohort feeds a Braze sync and a trait sync, and mark "
        "this checkout as a development one (var/dev.env) so later manage.py commands need no "
        "DEBUG=true."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sandbox-port", type=int, default=8765)
        parser.add_argument("--port", type=int, default=8000, help="The web server's port.")

    def handle(self, *args: Any, sandbox_port: int, port: int, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_demo is for development: it runs only with DEBUG=true.")
        if not settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS:
            raise CommandError(
                "The sandbox connections point at http://127.0.0.1: set "
                "COHORTSYNC_ALLOW_INSECURE_ENDPOINTS=true (make run does)."
            )
        password = demo_password()
        if not get_user_model().objects.filter(username=DEMO_EMAIL).exists():
            create_user(email=DEMO_EMAIL, role=Role.ADMIN, password=password, check_password=False)
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        braze = self._seed_connection(
            "braze",
            "Braze sandbox",
            # The simulator starts empty: let the demo create the profiles it writes to.
            {"instance": "custom", "custom_endpoint": sandbox, "update_existing_only": False},
            DEMO_BRAZE_KEY,
        )
        appsflyer = self._seed_connection(
            "appsflyer",
            "AppsFlyer sandbox",
            {"app_id": "com.example.cohortsync", "platform": "android", "api_host": sandbox},
            DEMO_APPSFLYER_TOKEN,
        )
        self._seed_sync()
        if seed_trait_sync(braze):
            self.stdout.write("Created the demo subscribers and their trait sync to Braze.")
        amplitude = seed_amplitude_demo(sandbox, self.stdout.write)
        queue_up = self._queue_is_up()
        for connection in (braze, appsflyer, amplitude):
            self._check_connection(connection, queue_now=queue_up)
        if queue_up:
            request_first_listing(amplitude)
        dev_env = write_dev_env()
        self.stdout.write(
            f"{dev_env} marks this checkout as a development one: manage.py commands run "
            "here with DEBUG=true."
        )
        self.stdout.write(f"The partner simulator's credentials: {simulator_credentials()}.")
        self.stdout.write(
            f"Demo ready. Log in at http://127.0.0.1:{port} as {DEMO_EMAIL} "
            f"with the password {password}"
        )

    def _seed_sync(self) -> None:
        """A cohort and an hourly sync to each sandbox, due now so runs show up within the
        dispatcher's next minute."""
        if Sync.objects.filter(name="Demo: lapsed buyers → Braze").exists():
            return
        cohort = Cohort.objects.create(name="Demo: lapsed buyers", source=Cohort.Source.MANUAL)
        # Most members carry an Android advertising id too, so the AppsFlyer sync has devices;
        # the rest are skipped there, with the reason on the run page.
        apply_changes(
            cohort.pk,
            add=[
                Identity(
                    "external_id",
                    f"demo-user-{n:04d}",
                    extras=(("gaid", str(uuid.UUID(int=n + 1))),) if n % 5 else (),
                )
                for n in range(500)
            ]
            + [Identity("device_id", f"demo-device-{n:03d}") for n in range(20)],
            update_extras=True,
        )
        for name, connection_name, mapping in (
            ("Demo: lapsed buyers → Braze", "Braze sandbox", ["external_id", "braze_id"]),
            ("Demo: lapsed buyers → AppsFlyer", "AppsFlyer sandbox", ["gaid"]),
        ):
            sync = create_sync(
                name=name,
                cohort=cohort,
                connection=Connection.objects.get(name=connection_name),
                identifier_mapping=mapping,
                cadence={"kind": "hourly"},
                actor=None,
            )
            Sync.objects.filter(pk=sync.pk).update(next_run_at=timezone.now())
        self.stdout.write("Created the demo cohort and its hourly syncs to both sandboxes.")

    def _seed_connection(
        self, kind: str, name: str, config: dict[str, Any], secret: str
    ) -> Connection:
        existing = Connection.objects.filter(name=name).first()
        if existing is not None:
            return existing
        connection = create_connection(
            kind=kind,
            name=name,
            config=PARTNERS[kind].parse_config(config),
            secret=secret,
            actor=None,
        )
        self.stdout.write(f"Created the {name} connection.")
        return connection

    def _queue_is_up(self) -> bool:
        """`make run` seeds before the stack starts its Redis: then the checks only wait."""
        try:
            return bool(django_rq.get_connection("default").ping())
        except redis.RedisError:
            return False

    def _check_connection(self, connection: Connection, *, queue_now: bool) -> None:
        """Test an untested demo connection through the normal check job, so its page tells what
        the simulator answered rather than "Not tested yet" beside syncs that ran. Before the
        stack is up the check waits as a row, and the cron queues it once Redis is there."""
        if connection.state != Connection.State.UNTESTED:
            return
        if connection.checks.exclude(status__in=ConnectionCheck.FINISHED).exists():
            return  # one is waiting already
        request_connection_check(connection=connection, actor=None, queue_now=queue_now)
        self.stdout.write(
            f"Queued a test of {connection.name}: a worker runs it once the stack is up."
        )
