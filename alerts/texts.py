"""What an alert says: the sync or connection by name, what happened, the run's counts and
error, and a full link to the page that explains it.

The same title and text go to email and, as `text`, to a Slack-compatible webhook, where `<...>`
is markup: a sync named `<!channel>` would notify the whole channel and `<http://x|y>` would be a
disguised link. So every name and every message that people or partners wrote is escaped by
Slack's rules (`slack_escape`: & < > as &amp; &lt; &gt;) before it goes in.
"""

from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse

from alerts.models import AlertDelivery, AlertState
from alerts.noise import StateChange
from connections.models import Connection
from syncs.models import Sync, SyncRun

Event = AlertDelivery.Event
State = AlertState.State


@dataclass(frozen=True)
class Alert:
    event: str
    subject_type: str
    subject_id: int | None
    subject_label: str
    title: str
    text: str
    url: str


def slack_escape(text: str) -> str:
    """Slack's escaping of text it shows: &, < and > only, & first."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def full_url(path: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def _when(change: StateChange) -> str:
    return change.since.strftime("%Y-%m-%d %H:%M %Z").strip()


def _added(run: SyncRun) -> str:
    """A trait run's adds are members updated; a membership run's, members added."""
    return "updated" if run.updates_traits else "added"


def _counts(run: SyncRun) -> str:
    return (
        f"Planned {run.planned:,}: {run.added:,} {_added(run)}, {run.removed:,} removed, "
        f"{run.failed:,} failed, {run.skipped:,} skipped."
    )


def run_alert(run: SyncRun, change: StateChange) -> Alert:
    sync: Sync = run.sync
    name = slack_escape(sync.name)
    route = f"“{slack_escape(sync.cohort.name)}” → {slack_escape(sync.connection.name)}"
    error = slack_escape(run.error_summary)
    if change.is_recovery:
        was = {
            State.FAILING: "failing",
            State.PARTLY_FAILING: "failing for too many of its members",
        }.get(State(change.previous), "held for approval")
        event, title = Event.SYNC_RECOVERED, f"Sync {name} recovered"
        lines = [
            f"Sync “{name}” ({route}) recovered: run {run.pk} "
            f"{run.get_status_display().lower()}. It had been {was} since {_when(change)}.",
        ]
    elif change.current == State.HELD:
        event, title = Event.RUN_HELD, f"Sync {name} is held for approval"
        lines = [
            f"Run {run.pk} of sync “{name}” ({route}) was held by the mass-removal guard.",
            error,
        ]
    elif change.current == State.PARTLY_FAILING:
        event, title = Event.RUN_PARTIALLY_FAILED, f"Sync {name} failed for many members"
        share = run.failed * 100 // max(run.planned, 1)
        lines = [
            f"Run {run.pk} of sync “{name}” ({route}) reached the partner, but {share} % of "
            f"its members failed ({run.failed:,} of {run.planned:,}).",
            error,
        ]
    else:
        event, title = Event.RUN_FAILED, f"Sync {name} failed"
        lines = [f"Run {run.pk} of sync “{name}” ({route}) failed.", error]
    lines.append(_counts(run))
    return Alert(
        event=event,
        subject_type=AlertState.SubjectType.SYNC,
        subject_id=sync.pk,
        subject_label=sync.name,
        title=title,
        text="\n".join(line for line in lines if line),
        url=full_url(reverse("syncs:run_detail", args=[sync.pk, run.pk])),
    )


def verification_alert(run: SyncRun, threshold_pct: float) -> Alert:
    sync: Sync = run.sync
    name = slack_escape(sync.name)
    route = f"“{slack_escape(sync.cohort.name)}” → {slack_escape(sync.connection.name)}"
    share = run.verified_pct or 0.0
    lines = [
        f"Run {run.pk} of sync “{name}” ({route}) {run.get_status_display().lower()}, but "
        f"reading a sample back found only {run.verify_verified or 0:,} of "
        f"{run.verify_sampled or 0:,} sampled members carrying the membership ({share:.0f} %, "
        f"below the {threshold_pct:g} % threshold).",
        "The partner accepted members it has not applied, or they changed there since.",
        _counts(run),
    ]
    return Alert(
        event=Event.VERIFICATION_LOW,
        subject_type=AlertState.SubjectType.SYNC,
        subject_id=sync.pk,
        subject_label=sync.name,
        title=f"Sync {name}: verified {run.verify_verified or 0:,} of {run.verify_sampled or 0:,} "
        "sampled",
        text="\n".join(lines),
        url=full_url(reverse("syncs:run_detail", args=[sync.pk, run.pk])),
    )


def connection_alert(connection: Connection, change: StateChange) -> Alert:
    waiting = connection.syncs.filter(status=Sync.Status.NEEDS_ATTENTION).count()
    escaped_name = slack_escape(connection.name)
    name = f"“{escaped_name}” ({connection.get_kind_display()})"
    last_error = slack_escape(connection.last_error)
    if change.is_recovery:
        event, title = Event.CONNECTION_RECOVERED, f"Connection {escaped_name} is healthy again"
        lines = [
            f"Connection {name} passed its test and is healthy again. "
            f"It had needed attention since {_when(change)}.",
            f"{waiting:,} sync(s) of it still wait to be resumed." if waiting else "",
        ]
    else:
        event = Event.CONNECTION_NEEDS_ATTENTION
        title = f"Connection {escaped_name} needs attention"
        lines = [
            f"Connection {name} needs attention: {last_error or 'no reason given.'}",
            f"{waiting:,} sync(s) of it are paused until it is fixed and tested."
            if waiting
            else "",
        ]
    return Alert(
        event=event,
        subject_type=AlertState.SubjectType.CONNECTION,
        subject_id=connection.pk,
        subject_label=connection.name,
        title=title,
        text="\n".join(line for line in lines if line),
        url=full_url(reverse("connections:detail", args=[connection.pk])),
    )


def sample_alert(sent_by: str) -> Alert:
    return Alert(
        event=Event.TEST,
        subject_type="",
        subject_id=None,
        subject_label="",
        title="Test alert",
        text=(
            f"This is a test alert from cohortsync, sent by {slack_escape(sent_by)}. Failed runs, "
            "held runs, connections that need attention and their recoveries are announced here."
        ),
        url=full_url(reverse("alerts:settings")),
    )
