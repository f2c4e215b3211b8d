"""The demo's Amplitude path, seeded by `seed_demo`: an Amplitude source connected to the
simulator's demo project (connections/sandbox/demo_project.py), one of its cohorts pulled on a
cadence, and the syncs that cohort feeds.

Nothing here writes members or download history: the seed only creates what a person would
click together (the source, the pull, the syncs), through the same services. The pull is due at
once, so the stack's dispatcher queues its first download within a minute of starting, the
worker downloads the file from the simulator, and the real-time sync runs on the change.

Another sync of the pulled cohort is one more entry in `PULLED_COHORT_SYNCS`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cohorts.models import AmplitudeCohortListing, AmplitudePull, Cohort
from cohorts.pulls.listing import request_listing
from cohorts.pulls.services import create_pull
from connections.models import Connection
from connections.partners import PARTNERS
from connections.partners.amplitude import Amplitude
from connections.sandbox import DEMO_AMPLITUDE_API_KEY, DEMO_AMPLITUDE_SECRET_KEY
from connections.sandbox.demo_project import DEMO_AMPLITUDE_COHORT_ID, DEMO_AMPLITUDE_COHORT_NAME
from connections.services import create_connection
from syncs.models import Sync
from syncs.services import create_sync

SOURCE_NAME = "Amplitude sandbox"
BRAZE_SANDBOX = "Braze sandbox"
# Daily: about 30 of the project's ~500 downloads a month (hourly would need 720).
PULL_CADENCE = AmplitudePull.Cadence.DAILY


@dataclass(frozen=True)
class DemoSync:
    """A sync of the pulled cohort, as the sync form would create it."""

    name: str
    connection_name: str
    identifier_mapping: list[str]
    cadence: dict[str, Any]
    options: dict[str, Any] | None = field(default=None)
    kind: str = Sync.Kind.MEMBERSHIP
    traits: list[dict[str, str]] | None = None


PULLED_COHORT_SYNCS = (
    # Real-time: it runs as soon as a download changes the cohort, the first one included.
    DemoSync(
        name="Demo: trial users → Braze",
        connection_name=BRAZE_SANDBOX,
        identifier_mapping=["external_id"],
        cadence={"kind": "realtime"},
    ),
    # The users' Amplitude properties, as Braze custom attributes; real-time too, so the first
    # download's members reach Braze with their plan and country.
    DemoSync(
        name="Demo: trial user traits → Braze",
        connection_name=BRAZE_SANDBOX,
        identifier_mapping=["external_id"],
        cadence={"kind": "realtime"},
        kind=Sync.Kind.TRAITS,
        traits=[{"property": "plan"}, {"property": "country", "attribute": "home_country"}],
    ),
)


def seed_amplitude_source(sandbox_url: str, say: Callable[[str], None]) -> Connection:
    """The source connection, with the simulator's key pair encrypted like any credential."""
    existing = Connection.objects.filter(name=SOURCE_NAME).first()
    if existing is not None:
        return existing
    secret = Amplitude.pack_secret(
        {"api_key": DEMO_AMPLITUDE_API_KEY, "secret_key": DEMO_AMPLITUDE_SECRET_KEY}
    )
    source = create_connection(
        kind=Amplitude.kind,
        name=SOURCE_NAME,
        config=PARTNERS[Amplitude.kind].parse_config(Amplitude.simulator_config(sandbox_url)),
        secret=secret,
        actor=None,
    )
    say(f"Created the {SOURCE_NAME} source connection.")
    return source


def seed_pull(source: Connection, say: Callable[[str], None]) -> Cohort:
    """The demo project's trial users, pulled daily; the first download is due at once."""
    pull = AmplitudePull.objects.filter(
        connection=source, amplitude_cohort_id=DEMO_AMPLITUDE_COHORT_ID
    ).first()
    if pull is None:
        pull = create_pull(
            connection=source,
            amplitude_cohort_id=DEMO_AMPLITUDE_COHORT_ID,
            name=DEMO_AMPLITUDE_COHORT_NAME,
            cadence=PULL_CADENCE,
            actor=None,
        )
        say(
            f"Pulling {DEMO_AMPLITUDE_COHORT_NAME} {PULL_CADENCE.label.lower()}: the worker "
            "downloads it within a minute of the stack starting."
        )
    return pull.cohort


def seed_pulled_cohort_syncs(cohort: Cohort, say: Callable[[str], None]) -> None:
    for spec in PULLED_COHORT_SYNCS:
        if Sync.objects.filter(name=spec.name).exists():
            continue
        create_sync(
            name=spec.name,
            cohort=cohort,
            connection=Connection.objects.get(name=spec.connection_name),
            identifier_mapping=spec.identifier_mapping,
            cadence=spec.cadence,
            options=spec.options,
            kind=spec.kind,
            traits=spec.traits,
            actor=None,
        )
        say(f"Created the sync {spec.name}.")


def seed_amplitude_demo(sandbox_url: str, say: Callable[[str], None]) -> Connection:
    """The source, its pulled cohort and that cohort's syncs; returns the source."""
    source = seed_amplitude_source(sandbox_url, say)
    seed_pulled_cohort_syncs(seed_pull(source, say), say)
    return source


def request_first_listing(source: Connection) -> None:
    """Have a worker read the project's cohort list for the source page, once. Only with the
    job queue up: `make run` seeds before its Redis starts, and then the page's "Read the list
    from Amplitude" button does it."""
    if not AmplitudeCohortListing.objects.filter(connection=source).exists():
        request_listing(source)
