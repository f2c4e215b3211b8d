"""A run's plan, written once when the run plans: who it adds and which ledger rows it removes.

The diff is computed set-based (one INSERT ... SELECT with the anti join the database does well)
instead of page by page, where every page probed the other table once per member: 1,000,000
members cost 2,000,000 index probes. Pages read the plan by keyset. A resumed run keeps its
plan; finish_run deletes it.
"""

from django.db import models

from syncs.models.syncs import SyncRun


class SyncRunPlanItem(models.Model):
    """One member the run adds (a CohortMember id) or one ledger row it removes (a SyncedMember
    id). Not a foreign key: the member may leave the cohort during the run, and is then skipped."""

    class Op(models.IntegerChoices):
        ADD = 1, "add"
        REMOVE = 2, "remove"

    pk = models.CompositePrimaryKey("run", "op", "ref_id")
    # The primary key leads with the run: no index of its own.
    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="+", db_index=False)
    op = models.PositiveSmallIntegerField(choices=Op.choices)
    ref_id = models.BigIntegerField()

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.get_op_display()} {self.ref_id}"
