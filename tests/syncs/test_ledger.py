"""syncs.engine.ledger.record_sent: a member already in the ledger keeps the row (and the
destination identifier) it was first sent with."""

import pytest

from syncs.engine.ledger import LedgerRow, record_sent
from syncs.models import SyncedMember, SyncRun
from tests.factories import make_cohort, make_run, make_sync

pytestmark = pytest.mark.django_db


def test_rows_are_written_and_a_second_write_of_a_member_changes_nothing():
    sync = make_sync(cohort=make_cohort(name="Churn"), mapping=["external_id", "braze_id"])
    first = make_run(sync)
    second = make_run(sync, status=SyncRun.Status.QUEUED)

    rows = [
        LedgerRow("external_id", "", f"u{n}", "external_id", f"u{n}", "") for n in range(75)
    ] + [LedgerRow("user_alias", "email", "a@example.com", "user_alias", "a@example.com", "email")]
    record_sent(sync.pk, first.pk, rows)
    record_sent(sync.pk, second.pk, [LedgerRow("external_id", "", "u1", "braze_id", "b-1", "")])
    record_sent(sync.pk, second.pk, [])
    assert SyncedMember.objects.filter(sync=sync).count() == 76
    kept = SyncedMember.objects.get(sync=sync, value="u1")
    assert (kept.dest_type, kept.run_id) == ("external_id", first.pk)
    alias = SyncedMember.objects.get(sync=sync, id_type="user_alias")
    assert (alias.alias_label, alias.dest_label) == ("email", "email")
