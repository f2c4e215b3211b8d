"""The demo's trait sync: a cohort whose members carry properties (as an Amplitude download or
webhook leaves them), and an hourly trait sync of some of them to the Braze sandbox, due now,
so `make run` shows member traits reaching Braze profiles. Idempotent, like the rest of the
demo. To feed it from a real source, point the sync's cohort at an Amplitude cohort instead."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from cohorts.membership import Identity, apply_changes
from cohorts.models import Cohort
from connections.models import Connection
from syncs.models import Sync
from syncs.services import create_sync

TRAIT_SYNC = "Demo: subscriber traits → Braze"
PLANS = ("free", "pro", "team")
TRAITS = [
    {"property": "plan"},
    {"property": "seats", "attribute": "seat_count"},
    {"property": "annual"},
    {"property": "renews_at"},
    {"property": "features"},
]


def demo_subscribers(count: int = 200) -> list[Identity]:
    """Members with properties of every type a trait sync keeps: text, number, boolean, time
    and array; every seventh has no plan yet, and a few are known by a device id only (the
    run skips them: a trait sync sends by external ID)."""
    start = datetime(2027, 1, 1, tzinfo=UTC)
    members = []
    for n in range(count):
        properties = {
            "seats": 1 + n % 12,
            "annual": n % 3 == 0,
            "renews_at": (start + timedelta(days=n)).strftime("%Y-%m-%d %H:%M:%S"),
            "features": ["reports", "exports"][: n % 3],
            "city": ("Lyon", "Oslo", "Lima")[n % 3],  # not sent: the sync does not choose it
        }
        if n % 7:
            properties["plan"] = PLANS[n % 3]
        members.append(Identity("external_id", f"demo-subscriber-{n:04d}", properties=properties))
    members += [
        Identity("device_id", f"demo-tablet-{n:02d}", properties={"plan": "pro"}) for n in range(5)
    ]
    return members


def seed_trait_sync(braze: Connection) -> bool:
    """The demo subscribers and their trait sync to `braze`; False when they exist already."""
    if Sync.objects.filter(name=TRAIT_SYNC).exists():
        return False
    cohort = Cohort.objects.create(name="Demo: subscribers", source=Cohort.Source.MANUAL)
    apply_changes(cohort.pk, add=demo_subscribers())
    sync = create_sync(
        name=TRAIT_SYNC,
        cohort=cohort,
        connection=braze,
        identifier_mapping=["external_id"],
        cadence={"kind": "hourly"},
        kind=Sync.Kind.TRAITS,
        traits=TRAITS,
        actor=None,
    )
    Sync.objects.filter(pk=sync.pk).update(next_run_at=timezone.now())
    return True
