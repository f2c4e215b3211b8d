"""update_sync: what may change, what is refused, and the audit entry of what changed."""

import pytest
from django.core.exceptions import ValidationError

from connections.models import Connection
from core.models import AuditEntry
from syncs.models import Sync
from syncs.services import update_sync
from tests.base import make_connection
from tests.factories import make_cohort, make_sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def braze_sync(cohort):
    return make_sync(cohort=cohort)


def test_changes_are_saved_and_audited_with_old_and_new(braze_sync, marketer):
    updated = update_sync(
        sync=braze_sync,
        actor=marketer,
        name="  Churn → Braze (hourly) ",
        cadence={"kind": "hourly"},
        identifier_mapping=["external_id", "braze_id"],
        options={"membership_mode": "boolean"},
    )
    stored = Sync.objects.get(pk=braze_sync.pk)
    assert stored.name == "Churn → Braze (hourly)"
    assert stored.cadence["kind"] == "hourly"
    assert stored.next_run_at is not None
    assert stored.identifier_mapping == ["external_id", "braze_id"]
    assert stored.options == {"membership_mode": "boolean"}
    assert updated.name == stored.name
    entry = AuditEntry.objects.get(action="sync.updated")
    assert entry.actor == marketer
    assert entry.details["name"] == {"from": "Churn → Braze", "to": "Churn → Braze (hourly)"}
    assert set(entry.details) == {"name", "cadence", "identifier_mapping", "options"}


def test_no_change_writes_no_audit_entry(braze_sync):
    update_sync(sync=braze_sync, actor=None, name=braze_sync.name)
    assert not AuditEntry.objects.filter(action="sync.updated").exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"name": " "},
        {"identifier_mapping": ["gaid"]},
        {"identifier_mapping": "external_id"},
        {"cadence": {"kind": "weekly"}},
        {"cadence": {"kind": "daily", "time_of_day": "25:00", "timezone": "UTC"}},
        {"leaving_members": "forget"},
        {"mass_removal_threshold_pct": 0},
        {"mass_removal_threshold_pct": "50"},
        {"options": {"membership_mode": "sometimes"}},
        {"options": {"import_key": "abc"}},
        {"options": ["array"]},
        {"cohort": None},
        {"connection": None},
    ],
)
def test_bad_input_is_refused_and_changes_nothing(braze_sync, changes):
    before = Sync.objects.values().get(pk=braze_sync.pk)
    with pytest.raises(ValidationError):
        update_sync(sync=braze_sync, actor=None, **changes)
    assert Sync.objects.values().get(pk=braze_sync.pk) == before
    assert not AuditEntry.objects.filter(action="sync.updated").exists()


def test_appsflyer_keeps_its_audience_unless_given_a_key():
    connection = make_connection(kind=Connection.Kind.APPSFLYER)
    sync = make_sync(
        name="Lapsed → AF",
        cohort=make_cohort(name="Lapsed"),
        connection=connection,
        mapping=["gaid"],
    )

    suffix = sync.options["audience_suffix"]
    sync = update_sync(sync=sync, actor=None, options={})
    assert sync.options["audience_suffix"] == suffix
    sync = update_sync(sync=sync, actor=None, options={"import_key": "aud-123"})
    assert sync.options["import_key"] == "aud-123"
