"""Deleting old rows in bounded batches: each batch a short transaction of its own, so a purge of
millions of rows never holds a long lock nor one huge transaction."""

import time
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

BATCH_SIZE = 5_000


def delete_in_batches(
    rows: "QuerySet[Any]", *, batch_size: int = BATCH_SIZE, deadline: float | None = None
) -> int:
    """Delete every row of `rows`, `batch_size` at a time; stops early (the rest waits for the
    next run) once time.monotonic() passes `deadline`. Returns how many rows were deleted."""
    model = rows.model
    deleted = 0
    while True:
        pks = list(rows.order_by().values_list("pk", flat=True)[:batch_size])
        if not pks:
            return deleted
        with transaction.atomic():
            model._default_manager.filter(pk__in=pks).delete()
        deleted += len(pks)
        if len(pks) < batch_size or (deadline is not None and time.monotonic() >= deadline):
            return deleted
