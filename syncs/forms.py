"""The sync form's steps as plain forms (cohort, destination, identifier, cadence, name), and
the answers turned into what syncs.services takes. syncs.steps chains them.

The identifier step offers every identifier: those the destination cannot take are shown
disabled with the reason, and refused with it if sent anyway; create_sync checks them again.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from cohorts.models import IDENTIFIER_LABELS, MEMBER_IDENTIFIERS, Cohort
from connections.models import Connection
from syncs import cadence as cadences
from syncs.models import Sync
from syncs.pages.preview import Coverage
from syncs.services import DEFAULT_VERIFY_SAMPLE, MAX_VERIFY_SAMPLE

CADENCE_CHOICES = [
    ("once", "Once (run it with Run now)"),
    ("hourly", "Hourly (at a minute of the hour picked for this sync)"),
    ("daily", "Daily at a time of day, in a time zone"),
    ("realtime", "Real-time (within a minute of each cohort change)"),
]
# Every identifier a member can carry is listed, with how many members have it; those the
# destination cannot take are shown disabled, with the reason.
ALL_IDENTIFIERS = list(MEMBER_IDENTIFIERS)
LEAVING_HELP = {
    Sync.Leaving.REMOVE: "When a member leaves the cohort, the next run takes them out of the "
    "destination too, so the destination matches the cohort.",
    Sync.Leaving.KEEP: "Members who leave the cohort stay in the destination; runs only add.",
}
VERIFY_HELP = (
    "After each run that sends members, read a random sample of them back from the destination "
    'and show how many carry the membership ("verified 97 of 100 sampled"); an alert goes out '
    "when the share falls below the threshold. Costs one export request per 50 members sampled."
)
KIND_CHOICES = [
    (Sync.Kind.MEMBERSHIP, "Membership: who is in the cohort"),
    (
        Sync.Kind.TRAITS,
        "Member traits: chosen member properties, as custom attributes (Braze, by external ID)",
    ),
]
THRESHOLD_HELP = (
    "A run that would remove more than this share of the members already in the destination "
    "is held for approval instead of sent."
)


def identifier_label(name: str, connection: Connection) -> str:
    """The identifier's name, and what the destination calls it where that differs."""
    label = IDENTIFIER_LABELS.get(name, name)
    partner = connection.partner
    if name in partner.identifier_names:
        return f"{label}, sent as {partner.label}'s {partner.identifier_names[name]}"
    return label


def unavailable_reason(connection: Connection, name: str) -> str | None:
    """Why `connection` cannot take identifier `name`, or None when it can."""
    return connection.partner.unavailable_reason(connection.get_config(), name)


@dataclass(frozen=True)
class IdentifierOption:
    """One row of the identifier step: how many members carry it, and whether it can be used."""

    name: str
    label: str
    members: int
    percent: float
    unavailable: str | None

    @property
    def percent_text(self) -> str:
        """Whole percents, but a few members never read as "0 %"."""
        if self.members and self.percent < 1:
            return "< 1 %"
        return f"{self.percent:.0f} %"


class CohortChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.member_count:,} member{'' if obj.member_count == 1 else 's'})"


class ConnectionChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.get_kind_display()})"


class CohortStep(forms.Form):
    cohort = CohortChoice(queryset=Cohort.objects.order_by("name", "id"), label="Cohort to send")


class DestinationStep(forms.Form):
    # Source connections (Amplitude) feed cohorts and take no members: never offered here.
    connection = ConnectionChoice(
        queryset=Connection.objects.destinations().order_by("name", "id"),
        label="Destination connection",
    )
    kind = forms.ChoiceField(
        choices=KIND_CHOICES,
        widget=forms.RadioSelect,
        initial=Sync.Kind.MEMBERSHIP,
        required=False,
        label="What to send",
    )

    def clean_kind(self) -> str:
        return self.cleaned_data.get("kind") or Sync.Kind.MEMBERSHIP

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        connection = data.get("connection")
        traits = data.get("kind") == Sync.Kind.TRAITS
        if traits and connection is not None and not connection.partner.takes_traits:
            self.add_error(
                "kind",
                f"{connection.partner.label} does not take member traits: send them to a "
                "Braze connection.",
            )
        return data

    def clean_connection(self) -> Connection:
        connection: Connection = self.cleaned_data["connection"]
        try:
            connection.get_config()
        except ValueError as exc:
            raise ValidationError(
                f"{connection.name} has settings that are not valid ({exc}); an admin must fix "
                "them before a sync can use it."
            ) from None
        return connection


class IdentifierStep(forms.Form):
    """The identifier mapping, plus the destination's own options for the sync (its partner's
    sync options form: Braze membership mode, AppsFlyer audience). Every identifier is a choice;
    those the destination cannot take are shown disabled, and refused with the reason if sent
    anyway."""

    primary_identifier = forms.ChoiceField(label="Identify members by")
    fallback_identifier = forms.ChoiceField(required=False, label="Otherwise by")

    def __init__(self, *args: Any, connection: Connection, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection = connection
        config = connection.get_config()
        labelled = [(name, identifier_label(name, connection)) for name in ALL_IDENTIFIERS]
        self._choice_field("primary_identifier").choices = labelled
        self._choice_field("fallback_identifier").choices = [("", "No fallback"), *labelled]
        # The connection's usual identifier is the first choice until one is picked.
        self.initial.setdefault("primary_identifier", connection.partner.default_identifier(config))
        self.option_names: list[str] = []
        for name, field in connection.partner.sync_options_form(config=config).fields.items():
            self.fields[name] = field
            self.option_names.append(name)
        if connection.partner.can_verify:
            # Only where the partner can read members back: elsewhere there is nothing to offer.
            self.fields["verify"] = forms.BooleanField(
                required=False, label="Verify a sample after each run", help_text=VERIFY_HELP
            )
            self.fields["verify_sample_size"] = forms.IntegerField(
                required=False,
                min_value=1,
                max_value=MAX_VERIFY_SAMPLE,
                initial=DEFAULT_VERIFY_SAMPLE,
                label="Members to sample",
            )
            self.option_names += ["verify", "verify_sample_size"]

    def _choice_field(self, name: str) -> forms.ChoiceField:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        return field

    def identifier_options(self, coverage: Coverage) -> list[IdentifierOption]:
        return [
            IdentifierOption(
                name=name,
                label=identifier_label(name, self.connection),
                members=coverage.by_identifier.get(name, 0),
                percent=coverage.percent(name),
                unavailable=unavailable_reason(self.connection, name),
            )
            for name in ALL_IDENTIFIERS
        ]

    def _available(self, field_name: str) -> str:
        name: str = self.cleaned_data.get(field_name) or ""
        reason = unavailable_reason(self.connection, name) if name else None
        if reason:
            label = identifier_label(name, self.connection)
            raise ValidationError(f"{label} is not available: {reason}")
        return name

    def clean_primary_identifier(self) -> str:
        return self._available("primary_identifier")

    def clean_fallback_identifier(self) -> str:
        return self._available("fallback_identifier")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        primary, fallback = data.get("primary_identifier"), data.get("fallback_identifier")
        if primary and fallback == primary:
            self.add_error("fallback_identifier", "Choose a different fallback, or none.")
        return data


class CadenceStep(forms.Form):
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

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("cadence") == "daily":
            # Every problem of the step at once: a missing time does not hide a bad time zone.
            if not data.get("daily_time") and "daily_time" not in self.errors:
                self.add_error("daily_time", "A daily sync needs its time of day.")
            try:
                cadences.check_timezone((data.get("timezone") or "UTC").strip())
            except cadences.CadenceError as exc:
                self.add_error("timezone", str(exc))
        if data.get("cadence") and not self.errors:
            try:
                cadences.parse_cadence(cadence_of(data))
            except cadences.CadenceError as exc:
                self.add_error("cadence", str(exc))
        return data


class TraitCadenceStep(CadenceStep):
    """The cadence of a trait sync: it removes no one, so nothing about leaving members."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["leaving_members"], self.fields["mass_removal_threshold_pct"]


class PreviewStep(forms.Form):
    name = forms.CharField(max_length=255, label="Name of the sync")


def mapping_of(answers: Mapping[str, Any]) -> list[str]:
    return [
        name for name in (answers["primary_identifier"], answers["fallback_identifier"]) if name
    ]


def cadence_of(answers: Mapping[str, Any]) -> dict[str, Any]:
    """The cadence as syncs.cadence reads it."""
    if answers["cadence"] != "daily":
        return {"kind": answers["cadence"]}
    return {
        "kind": "daily",
        "time_of_day": answers["daily_time"].strftime("%H:%M"),
        "timezone": (answers.get("timezone") or "UTC").strip(),
    }


def verification_of(answers: Mapping[str, Any], connection: Connection) -> dict[str, Any]:
    """The sync's verification among the answers, where its partner offers one (else none)."""
    if not connection.partner.can_verify:
        return {}
    return {
        "verify": bool(answers.get("verify")),
        "verify_sample_size": answers.get("verify_sample_size") or DEFAULT_VERIFY_SAMPLE,
    }


def options_of(answers: Mapping[str, Any], connection: Connection) -> dict[str, Any]:
    """The partner's sync options among the answers, those given."""
    form = connection.partner.sync_options_form(config=connection.get_config())
    options: dict[str, Any] = {}
    for name in form.fields:
        value = answers.get(name)
        if isinstance(value, str):
            value = value.strip()
        if value:
            options[name] = value
    return options
