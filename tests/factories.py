"""The rows tests build on, made one way: cohorts with their members, connections (to the partner
simulator too), syncs and runs. Keyword arguments only, but for the row a run belongs to and a
connection's partner.

Rows are made the way the product makes them unless a test asks otherwise: connections through
`create_connection`, members through `apply_changes`, syncs through `create_sync` (validated,
audited, with their next run), runs as bare rows (the engine's events and counts are the test's
to add).
"""

import inspect
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort
from connections.models import Connection
from connections.partners import PARTNERS
from connections.sandbox import DEMO_BRAZE_KEY
from connections.sandbox.server import SandboxServer
from connections.services import create_connection
from syncs.models import Sync, SyncRun
from syncs.services import create_sync

# A number of members (external ids user-0, user-1, ...) or the members themselves; a plain
# string is an external id.
Members = int | Iterable[Identity | str]
# A cadence's kind ("once", "hourly", "realtime", ...) or the whole cadence ({"kind": "hourly",
# "minute": 0}).
Cadence = str | Mapping[str, Any]

# What create_sync takes besides the sync's name, cohort, connection, mapping and cadence.
_SERVICE_OPTIONS = frozenset(inspect.signature(create_sync).parameters) - {
    "name",
    "cohort",
    "connection",
    "identifier_mapping",
    "cadence",
}
# Numbers the connections nobody named.
_counter = itertools.count(1)


def _identities(members: Members) -> list[Identity]:
    if isinstance(members, int):
        return [Identity("external_id", f"user-{n}") for n in range(members)]
    return [m if isinstance(m, Identity) else Identity("external_id", m) for m in members]


def make_cohort(
    *,
    name: str = "Churn risk",
    members: Members = (),
    source: str = Cohort.Source.MANUAL,
    **fields: Any,
) -> Cohort:
    """A cohort (manual unless `source` says otherwise) with `members`, added through
    apply_changes with their extra identifiers; returned as the database has it after."""
    cohort = Cohort.objects.create(name=name, source=source, **fields)
    identities = _identities(members)
    if identities:
        with_extras = any(identity.extras for identity in identities)
        apply_changes(cohort.pk, add=identities, update_extras=with_extras)
        cohort.refresh_from_db()
    return cohort


def make_connection(
    kind: str = "braze",
    *,
    name: str | None = None,
    endpoint: str = "https://rest.iad-01.braze.com",
    secret: str = "braze-rest-key-0000-1a2b",
    **config: Any,
) -> Connection:
    """A connection saved through the service, as an admin would add it."""
    partner = PARTNERS[kind]
    return create_connection(
        kind=kind,
        name=name or f"{kind} {next(_counter)}",
        config=partner.parse_config({**partner.simulator_config(endpoint), **config}),
        secret=secret,
        actor=None,
    )


def make_simulator_connection(
    sandbox: SandboxServer, *, name: str = "Braze sandbox", **config: Any
) -> Connection:
    """A Braze connection to the partner simulator with its demo key. Profiles are created on
    first write (`update_existing_only` off unless `config` says so), so the simulator's state
    shows every member a run sent."""
    config.setdefault("update_existing_only", False)
    return make_connection(name=name, endpoint=sandbox.url, secret=DEMO_BRAZE_KEY, **config)


def make_sync(
    *,
    cohort: Cohort | None = None,
    connection: Connection | None = None,
    name: str = "Churn → Braze",
    cadence: Cadence | None = None,
    mapping: Iterable[str] = ("external_id",),
    orm: bool = False,
    **fields: Any,
) -> Sync:
    """A sync of `cohort` (else a new manual cohort named "Cohort of <name>") to `connection`
    (else a new Braze connection), sent by external id, run once, unless told otherwise.

    Made through create_sync: the `fields` it takes (leaving_members, mass_removal_threshold_pct,
    options, actor, ip) go to it, and the other Sync fields (status, next_run_at,
    last_run_status, ...) are written afterwards, as runs and pauses leave them. With `orm=True`
    the row is saved as given, every field at once: no validation, audit entry or next run.
    """
    if cohort is None:
        cohort = make_cohort(name=f"Cohort of {name}")
    if connection is None:
        connection = make_connection()
    cadence = {"kind": cadence} if isinstance(cadence, str) else dict(cadence or {"kind": "once"})
    row: dict[str, Any] = {
        "name": name,
        "cohort": cohort,
        "connection": connection,
        "identifier_mapping": list(mapping),
        "cadence": cadence,
    }
    if orm:
        return Sync.objects.create(**row, **fields)
    options = {key: fields.pop(key) for key in list(fields) if key in _SERVICE_OPTIONS}
    sync = create_sync(**row, **{"actor": None, **options})
    if fields:
        Sync.objects.filter(pk=sync.pk).update(**fields)
        sync.refresh_from_db()
    return sync


def make_run(
    sync: Sync,
    *,
    status: str = SyncRun.Status.SUCCEEDED,
    trigger: str = SyncRun.Trigger.MANUAL,
    **fields: Any,
) -> SyncRun:
    """A run of `sync`, saved as given: started by hand and succeeded unless told otherwise."""
    return SyncRun.objects.create(sync=sync, status=status, trigger=trigger, **fields)
