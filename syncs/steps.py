"""The sync form, one step at a time: cohort → destination → identifier → cadence → preview
(a trait sync: cohort → destination → traits → cadence → preview).

The answers of the other steps travel with every request as hidden fields (GET between steps,
so reloading and the browser's Back button just work), and every request validates again each
step before the one it shows: a tampered or outdated answer sends the marketer back to its step
with the error, and nothing is written until the last step's POST, which goes through
syncs.services (that validates everything once more).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import ValidationError

from connections.partners import PARTNERS
from syncs.forms import (
    CadenceStep,
    CohortStep,
    DestinationStep,
    IdentifierStep,
    PreviewStep,
    TraitCadenceStep,
)
from syncs.models import Sync
from syncs.trait_forms import TraitsStep, traits_text

CREATE_STEPS = ("cohort", "destination", "identifier", "cadence", "preview")
# A sync keeps its cohort and destination (update_sync): editing starts at the identifier.
EDIT_STEPS = ("identifier", "cadence", "preview")
# A trait sync picks its properties where a membership sync picks its identifier.
TRAIT_CREATE_STEPS = ("cohort", "destination", "traits", "cadence", "preview")
TRAIT_EDIT_STEPS = ("traits", "cadence", "preview")
# Steps that stand in the same place in the two walks.
SAME_PLACE = {"identifier": "traits", "traits": "identifier"}
STEP_TITLES = {
    "cohort": "Cohort",
    "destination": "Destination",
    "identifier": "Identifier",
    "traits": "Properties",
    "cadence": "Cadence",
    "preview": "Preview",
}
STEP_FIELDS = {
    "cohort": ("cohort",),
    "destination": ("connection", "kind"),
    "traits": ("traits", "traits_send_nulls"),
    # With every partner's sync options: the step shows those of the chosen destination.
    "identifier": (
        "primary_identifier",
        "fallback_identifier",
        *dict.fromkeys(
            name for partner in PARTNERS.values() for name in partner.sync_options_form.base_fields
        ),
        "verify",
        "verify_sample_size",
    ),
    "cadence": (
        "cadence",
        "daily_time",
        "timezone",
        "leaving_members",
        "mass_removal_threshold_pct",
    ),
    "preview": ("name",),
}


def step_form(
    step: str,
    answers: Mapping[str, Any],
    data: Mapping[str, Any] | None = None,
    initial: dict[str, Any] | None = None,
) -> forms.Form:
    """The form of `step`, given the answers of the steps before it."""
    if step == "identifier":
        return IdentifierStep(data, initial=initial, connection=answers["connection"])
    if step == "traits":
        return TraitsStep(data, initial=initial, connection=answers["connection"])
    if step == "cadence" and answers.get("kind") == Sync.Kind.TRAITS:
        return TraitCadenceStep(data, initial=initial)
    form_class = {
        "cohort": CohortStep,
        "destination": DestinationStep,
        "cadence": CadenceStep,
        "preview": PreviewStep,
    }[step]
    return form_class(data, initial=initial)


def steps_for(kind: object, *, editing: bool) -> tuple[str, ...]:
    """The steps of a sync of `kind` (as asked: an unknown kind walks a membership sync's)."""
    if kind == Sync.Kind.TRAITS:
        return TRAIT_EDIT_STEPS if editing else TRAIT_CREATE_STEPS
    return EDIT_STEPS if editing else CREATE_STEPS


def answers_of_sync(sync: Sync) -> dict[str, str]:
    """A sync's settings as the steps' raw fields: where editing starts."""
    mapping = list(sync.identifier_mapping or [])
    cadence = sync.cadence or {}
    return {
        "primary_identifier": mapping[0] if mapping else "",
        "fallback_identifier": mapping[1] if len(mapping) > 1 else "",
        # The sync's own options, but not what its partner wrote there itself (an AppsFlyer
        # audience made on the first run): left blank, those stay as they are.
        **{
            name: str(sync.options.get(name, ""))
            for name in sync.connection.partner.sync_options_form.base_fields
            if name not in sync.connection.partner.kept_sync_options
        },
        "verify": "on" if sync.verify else "",
        "verify_sample_size": str(sync.verify_sample_size),
        "cadence": str(cadence.get("kind", "once")),
        "daily_time": str(cadence.get("time_of_day", "")),
        "timezone": str(cadence.get("timezone", "UTC")),
        "leaving_members": sync.leaving_members,
        "mass_removal_threshold_pct": str(sync.mass_removal_threshold_pct),
        "traits": traits_text(sync.traits),
        "traits_send_nulls": "on" if sync.traits_send_nulls else "",
        "name": sync.name,
    }


@dataclass
class Walk:
    """Where a request lands: the step to show, its form, and the answers before it."""

    steps: tuple[str, ...]
    data: Mapping[str, Any]
    step: str
    form: forms.Form
    answers: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.form.is_bound and not self.form.is_valid()

    def carried(self) -> list[tuple[str, str]]:
        """The other steps' raw answers, as hidden fields of this step's form."""
        return [
            (name, str(self.data[name]))
            for step in self.steps
            if step != self.step
            for name in STEP_FIELDS[step]
            if self.data.get(name) not in (None, "")
        ]

    def query_for(self, step: str) -> str:
        """The query string that opens `step` with every answer given so far."""
        fields = [
            (name, str(self.data[name]))
            for each in self.steps
            for name in STEP_FIELDS[each]
            if self.data.get(name) not in (None, "")
        ]
        return urlencode([("step", step), *fields])

    def add_service_errors(self, exc: ValidationError) -> None:
        """Put a service's errors on this (last) step's form: the service re-checks every step."""
        if not hasattr(exc, "error_dict"):
            self.form.add_error(None, exc)
            return
        for name, errors in exc.message_dict.items():
            self.form.add_error("name" if name == "name" else None, errors)


def walk(
    steps: tuple[str, ...],
    data: Mapping[str, Any],
    *,
    target: str,
    fixed: Mapping[str, Any],
    submitted: bool = False,
) -> Walk:
    """Validate every step before `target` (and `target` itself when `submitted`); land on the
    first one that fails, with its errors, or on `target`."""
    answers = dict(fixed)
    for step in steps[: steps.index(target) + (1 if submitted else 0)]:
        form = step_form(step, answers, data=data)
        if not form.is_valid():
            return Walk(steps, data, step, form, answers)
        answers.update(form.cleaned_data)
    if submitted:
        return Walk(steps, data, target, form, answers)
    initial = {name: data[name] for name in STEP_FIELDS[target] if data.get(name) not in (None, "")}
    return Walk(steps, data, target, step_form(target, answers, initial=initial), answers)
