"""The sync creation form. It collects input; syncs.sync_services.create_sync validates and saves.

Only what the engine does today is offered: Braze destinations (AppsFlyer is refused with the
reason, so nobody picks something that does nothing).
"""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from connections.models import Connection
from syncs.models import Cohort, Sync
from syncs.sync_services import IDENTIFIERS_BY_KIND

APPSFLYER_REFUSED = "AppsFlyer syncs arrive with the next release of the engine."
CADENCE_CHOICES = [
    ("once", "Once (run it with Run now)"),
    ("hourly", "Hourly (at a minute of the hour picked for this sync)"),
    ("daily", "Daily at a time of day, in a time zone"),
    ("realtime", "Real-time (within a minute of each cohort change)"),
]
IDENTIFIER_LABELS = {
    "external_id": "External ID",
    "user_alias": "User alias",
    "braze_id": "Braze ID",
}
LEAVING_HELP = {
    Sync.Leaving.REMOVE: "When a member leaves the cohort, the next run takes them out of the "
    "destination too, so the destination matches the cohort.",
    Sync.Leaving.KEEP: "Members who leave the cohort stay in the destination; runs only add.",
}
THRESHOLD_HELP = (
    "A run that would remove more than this share of the members already in the destination "
    "is held for approval instead of sent."
)


def _identifier_choices() -> list[tuple[str, str]]:
    return [(name, IDENTIFIER_LABELS.get(name, name)) for name in IDENTIFIERS_BY_KIND["braze"]]


class SyncForm(forms.Form):
    name = forms.CharField(max_length=255)
    cohort = forms.ModelChoiceField(queryset=Cohort.objects.order_by("name", "id"))
    connection = forms.ModelChoiceField(
        queryset=Connection.objects.order_by("name", "id"), label="Destination connection"
    )
    primary_identifier = forms.ChoiceField(
        choices=_identifier_choices,
        label="Identify members by",
        help_text="The Braze identifier each member is sent with.",
    )
    fallback_identifier = forms.ChoiceField(
        choices=lambda: [("", "No fallback"), *_identifier_choices()],
        required=False,
        label="Otherwise by",
        help_text="Used for members who lack the first identifier; members with neither are "
        "skipped and listed on the run page.",
    )
    cadence = forms.ChoiceField(
        choices=CADENCE_CHOICES, widget=forms.RadioSelect, initial="once", label="Cadence"
    )
    daily_time = forms.TimeField(
        required=False,
        label="Time of day (daily)",
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    timezone = forms.CharField(
        required=False,
        initial="UTC",
        max_length=64,
        label="Time zone (daily)",
        help_text="An IANA name such as Europe/Paris or America/New_York.",
    )
    leaving_members = forms.ChoiceField(
        choices=Sync.Leaving.choices,
        widget=forms.RadioSelect,
        initial=Sync.Leaving.REMOVE,
        label="Members who leave the cohort",
    )
    mass_removal_threshold_pct = forms.IntegerField(
        min_value=1,
        max_value=100,
        initial=50,
        label="Mass-removal threshold (%)",
        help_text=THRESHOLD_HELP,
    )

    def clean_connection(self) -> Connection:
        connection: Connection = self.cleaned_data["connection"]
        if connection.kind != Connection.Kind.BRAZE:
            raise ValidationError(APPSFLYER_REFUSED)
        return connection

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        primary, fallback = data.get("primary_identifier"), data.get("fallback_identifier")
        if primary and fallback == primary:
            self.add_error("fallback_identifier", "Choose a different fallback, or none.")
        if data.get("cadence") == "daily" and not data.get("daily_time"):
            self.add_error("daily_time", "A daily sync needs its time of day.")
        return data

    def cadence_dict(self) -> dict[str, Any]:
        """The cadence as syncs.cadence reads it; create_sync validates it (time zone included)."""
        kind = self.cleaned_data["cadence"]
        if kind != "daily":
            return {"kind": kind}
        return {
            "kind": kind,
            "time_of_day": self.cleaned_data["daily_time"].strftime("%H:%M"),
            "timezone": (self.cleaned_data.get("timezone") or "UTC").strip(),
        }

    def identifier_mapping(self) -> list[str]:
        mapping = [self.cleaned_data["primary_identifier"]]
        if self.cleaned_data.get("fallback_identifier"):
            mapping.append(self.cleaned_data["fallback_identifier"])
        return mapping

    def add_service_errors(self, exc: ValidationError) -> None:
        """Put create_sync's field errors on the form's fields of the same meaning."""
        aliases = {"identifier_mapping": "primary_identifier", "cadence": "cadence"}
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        for field, errors in exc.message_dict.items():
            target = aliases.get(field, field)
            self.add_error(target if target in self.fields else None, errors)
