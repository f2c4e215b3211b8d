"""The syncs app's models: syncs, their runs, the ledger and each run's history and plan."""

from syncs.models.plans import SyncRunPlanItem
from syncs.models.run_history import SyncRemoval, SyncRunEvent, SyncRunExchange
from syncs.models.syncs import Sync, SyncedMember, SyncRun, SyncRunError
from syncs.models.traits import SyncedTraits

__all__ = [
    "Sync",
    "SyncRemoval",
    "SyncRun",
    "SyncRunError",
    "SyncRunEvent",
    "SyncRunExchange",
    "SyncRunPlanItem",
    "SyncedMember",
    "SyncedTraits",
]
