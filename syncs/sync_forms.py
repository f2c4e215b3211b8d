"""The sync creation form. It collects input; syncs.sync_services.create_sync validates and saves.

The identifier choices cover every partner; create_sync refuses one the destination cannot
take (for AppsFlyer, per platform) with the list it can.
"""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from connections.models import Connection
from syncs.models import Cohort, Sync
from syncs.sync_services import IDENTIFIERS_BY_KIND

CADENCE_CHOICES = [
    ("once", "Once (run it with Run now)"),
    ("hourly", "Hourly (at a minute of the hour picked for this sync)"),
    ("daily", "Daily at a time of day, in a time zone"),
    ("realtime", "Real-time (within a minute of each cohort change)"),
]
IDENTIFIER_LABELS = {
    "external_id": "External ID (AppsFlyer: customer user id)",
    "user_alias": "User alias (Braze)",
    "braze_id": "Braze ID",
    "gaid": "GAID (AppsFlyer, Android)",
    "oaid": "OAID (AppsFlyer, Android)",
    "idfv": "IDFV (AppsFlyer, iOS)",
    "amplitude_id": "Amplitude ID (AppsFlyer)",
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
    names = dict.fromkeys(name for names in IDENTIFIERS_BY_KIND.values() for name in names)
    return [(name, IDENTIFIER_LABELS.get(name, name)) for name in names]


class SyncForm(forms.Form):
    name = forms.CharField(max_length=255)
    cohort = forms.ModelChoiceField(queryset=Cohort.objects.order_by("name", "id"))
    connection = forms.ModelChoiceField(
        queryset=Connection.objects.order_by("name", "id"), label="Destination connection"
    )
    primary_identifier = forms.ChoiceField(
        choices=_identifier_choices,
        label="Identify members by",
        help_text="The identifier each member is sent to the destination with.",
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
    import_key = forms.CharField(
        required=False,
        max_length=200,
        label="AppsFlyer audience import key",
        help_text="Leave blank and the first run creates an audience named after the cohort.",
    )
    mass_removal_threshold_pct = forms.IntegerField(
        min_value=1,
        max_value=100,
        initial=50,
        label="Mass-removal threshold (%)",
        help_text=THRESHOLD_HELP,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        primary, fallback = data.get("primary_identifier"), data.get("fallback_identifier")
        if primary and fallback == primary:
            self.add_error("fallback_identifier", "Choose a different fallback, or none.")
        if data.get("cadence") == "daily" and not data.get("daily_time"):
            self.add_error("daily_time", "A daily sync needs its time of day.")
        return data

    def options(self) -> dict[str, Any]:
        key = (self.cleaned_data.get("import_key") or "").strip()
        return {"import_key": key} if key else {}

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
