"""The syncs app's models: cohorts and what fills them, then syncs, their runs and ledger."""

from syncs.models.cohorts import (
    EXTRA_IDENTIFIERS,
    MAX_IDENTIFIER_LENGTH,
    Cohort,
    CohortMember,
    CohortSizeSample,
    CsvUpload,
    CsvUploadRow,
    IdentityFields,
    IdType,
    ImportRequest,
)
from syncs.models.plans import SyncRunPlanItem
from syncs.models.run_history import SyncRemoval, SyncRunEvent
from syncs.models.syncs import Sync, SyncedMember, SyncRun, SyncRunError

__all__ = [
    "EXTRA_IDENTIFIERS",
    "MAX_IDENTIFIER_LENGTH",
    "Cohort",
    "CohortMember",
    "CohortSizeSample",
    "CsvUpload",
    "CsvUploadRow",
    "IdType",
    "IdentityFields",
    "ImportRequest",
    "Sync",
    "SyncRemoval",
    "SyncRun",
    "SyncRunError",
    "SyncRunEvent",
    "SyncRunPlanItem",
    "SyncedMember",
]
