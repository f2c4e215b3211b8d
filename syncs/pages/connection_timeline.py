"""What happened to one connection, newest first: runs of its syncs, edits of its configuration
and credentials, credential tests and refusals, its partner's data-import key events, each with
who did it.

It lives in syncs because runs do (connections never imports syncs); the connection's page loads
it with htmx. Three sources are merged a page at a time with a keyset cursor (time, source,
id), so a page costs one query per source however long the history.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast

from connections.models import Connection, ConnectionCheck, ImportKey
from core.audit import SYSTEM_ACTOR
from core.models import AuditEntry
from syncs.models import SyncRun

PAGE_SIZE = 25
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Ties on time are broken by source, then id: the order is total, so no item is shown twice.
RUN, CHECK, AUDIT = 3, 2, 1
# ConnectionCheck rows say more about a test (who asked, outcome, message) than these entries.
CHECK_ACTIONS = ("connection.check_requested", "connection.checked")
# Re-encrypting every credential with a new encryption key is recorded once, for all of them.
CREDENTIALS_ROTATED = "credentials.rotated"
KEY_EVENTS = {
    "import_key.generated": "Data-import key generated",
    "import_key.rotated": "Data-import key rotated",
    "import_key.revoked": "Data-import key revoked",
}


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    at: datetime
    source: int
    id: int

    def __str__(self) -> str:
        return f"{(self.at - EPOCH) // timedelta(microseconds=1)}.{self.source}.{self.id}"

    @classmethod
    def parse(cls, text: str) -> "Cursor":
        parts = text.split(".")
        if len(parts) != 3 or not all(part.isascii() and part.isdigit() for part in parts):
            raise BadCursor("The 'before' position is not one this page wrote.")
        micros, source, pk = (int(part) for part in parts)
        if source not in (RUN, CHECK, AUDIT) or micros > 10**17:
            raise BadCursor("The 'before' position is not one this page wrote.")
        return cls(EPOCH + timedelta(microseconds=micros), source, pk)


@dataclass(frozen=True)
class Item:
    at: datetime
    source: int
    id: int
    kind: str  # "run", "check", "edit", "credentials", "auth_failed", ...
    actor: str
    title: str
    text: str
    status: str = ""  # a badge class, when the item has an outcome
    status_label: str = ""
    sync_id: int | None = None  # runs link to their page

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.at, self.source, self.id)


@dataclass(frozen=True)
class TimelinePage:
    items: list[Item]
    older: Cursor | None


def _older_than(cursor: Cursor | None, field: str, source: int) -> Q:
    if cursor is None:
        return Q()
    older = Q(**{f"{field}__lt": cursor.at})
    if source < cursor.source:
        return older | Q(**{field: cursor.at})
    if source == cursor.source:
        return older | Q(**{field: cursor.at, "id__lt": cursor.id})
    return older


def _run_item(run: SyncRun) -> Item:
    counts = f"+{run.added:,} -{run.removed:,}"
    counts += f", {run.failed:,} failed" if run.failed else ""
    counts += f", {run.skipped:,} skipped" if run.skipped else ""
    who = run.requested_by.get_username() if run.requested_by else SYSTEM_ACTOR
    return Item(
        at=run.queued_at,
        source=RUN,
        id=run.pk,
        kind="run",
        actor=who,
        title=f"Run {run.pk} of {run.sync.name}",
        text=f"{run.get_trigger_display()} · {counts}"
        + (f" · {run.error_summary}" if run.error_summary else ""),
        status=run.status,
        status_label=run.get_status_display(),
        sync_id=run.sync_id,
    )


def _check_item(check: ConnectionCheck) -> Item:
    who = check.requested_by.get_username() if check.requested_by else SYSTEM_ACTOR
    return Item(
        at=check.created_at,
        source=CHECK,
        id=check.pk,
        kind="check",
        actor=who,
        title="Credential test",
        text=check.message,
        status=check.status,
        status_label=check.get_status_display(),
    )


def _audit_item(entry: AuditEntry) -> Item:
    details: dict[str, Any] = entry.details if isinstance(entry.details, dict) else {}
    kind, title, text, status, label = "edit", entry.action_label, "", "", ""
    if entry.action == "connection.created":
        title, text = "Connection created", str(details.get("kind", ""))
    elif entry.action == "connection.updated":
        changed = [str(name) for name in details.get("changed") or []]
        if "credentials" in changed:
            kind, title = "credentials", "Credentials replaced"
        else:
            title = "Configuration edited"
        edited = [name.replace("_", " ") for name in changed if name != "credentials"]
        text = f"Changed: {', '.join(edited)}" if edited else ""
    elif entry.action == "connection.auth_failed":
        kind, title = "auth_failed", "Credentials refused during a run"
        status, label = "refused", "Refused"
        text = str(details.get("message", ""))
    elif entry.action == "connection.batch_size_learnt":
        title = f"Batch size lowered to {details.get('size')} by a run"
        text = str(details.get("message", ""))
    elif entry.action in KEY_EVENTS:
        kind, title = "key", KEY_EVENTS[entry.action]
        named = str(details.get("name") or entry.target_label)
        text = " · ".join(part for part in (named, str(details.get("prefix") or "")) if part)
    elif entry.action == CREDENTIALS_ROTATED:
        kind, title = "credentials", "Credentials re-encrypted with a new encryption key"
        text = "Every connection's credentials, by rotate_credentials."
    return Item(
        at=entry.created_at,
        source=AUDIT,
        id=entry.pk,
        kind=kind,
        actor=entry.actor_label or SYSTEM_ACTOR,
        title=title,
        text=text,
        status=status,
        status_label=label,
    )


def _newest(rows: QuerySet[Any], field: str, source: int, before: Cursor | None) -> QuerySet[Any]:
    return rows.filter(_older_than(before, field, source)).order_by(f"-{field}", "-id")[
        : PAGE_SIZE + 1
    ]


def timeline_page(connection: Connection, *, before: Cursor | None = None) -> TimelinePage:
    """PAGE_SIZE items older than `before`, newest first: three queries."""
    runs = SyncRun.objects.filter(sync__connection_id=connection.pk).select_related(
        "sync", "requested_by"
    )
    checks = ConnectionCheck.objects.filter(connection_id=connection.pk).select_related(
        "requested_by"
    )
    # Data-import keys belong to a partner, not a connection: the connection's page shows the
    # key events of its partner's keys.
    partner_keys = (
        ImportKey.objects.filter(partner=connection.kind)
        .annotate(as_text=Cast("pk", CharField()))
        .values("as_text")
    )
    entries = AuditEntry.objects.filter(
        Q(
            Q(target_id=str(connection.pk)) | Q(target_id="", action=CREDENTIALS_ROTATED),
            target_type="connection",
        )
        | Q(target_type="importkey", target_id__in=partner_keys)
    ).exclude(action__in=CHECK_ACTIONS)
    items = [
        *(_run_item(run) for run in _newest(runs, "queued_at", RUN, before)),
        *(_check_item(check) for check in _newest(checks, "created_at", CHECK, before)),
        *(_audit_item(entry) for entry in _newest(entries, "created_at", AUDIT, before)),
    ]
    items.sort(key=lambda item: (item.at, item.source, item.id), reverse=True)
    shown = items[:PAGE_SIZE]
    return TimelinePage(shown, shown[-1].cursor if len(items) > PAGE_SIZE else None)
