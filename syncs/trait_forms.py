"""The trait sync form's own step: the properties to send, each renamed or not, and whether a
property gone at the source is sent as null. syncs.steps puts it where a membership sync has
its identifier step.

The choice travels as one text field, a line per property (`plan`, or `score -> lead_score`
to rename), so it rides between the steps like every other answer; the step shows beside it
each property the cohort's members carry, with how many have it and sample values.
"""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from connections.models import Connection
from syncs.engine.traits import Trait, TraitsError, parse_traits

RENAMES = ("->", "→")
TRAITS_HELP = (
    "One property per line, as the members carry it. Each is written to the Braze custom "
    "attribute of the same name, unless renamed: score -> lead_score."
)
NULLS_HELP = (
    "When a member's property disappears at the source, remove the attribute from the profile "
    "(sent as null). Otherwise the profile keeps the last value sent."
)


def traits_text(traits: list[dict[str, str]]) -> str:
    """A sync's traits as the step's text."""
    return "\n".join(
        item["property"]
        if item["attribute"] == item["property"]
        else f"{item['property']} -> {item['attribute']}"
        for item in traits
    )


def traits_of_text(text: str) -> list[dict[str, str]]:
    """The step's text as create_sync takes it: blank lines skipped."""
    traits = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, attribute = line, ""
        for arrow in RENAMES:
            if arrow in line:
                name, attribute = line.split(arrow, 1)
                break
        traits.append({"property": name.strip(), "attribute": attribute.strip()})
    return traits


class TraitsStep(forms.Form):
    traits = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        label="Properties to send",
        help_text=TRAITS_HELP,
    )
    traits_send_nulls = forms.BooleanField(
        required=False, label="Remove an attribute when its property is gone", help_text=NULLS_HELP
    )

    def __init__(self, *args: Any, connection: Connection, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection = connection

    def clean_traits(self) -> list[dict[str, str]]:
        try:
            parsed: list[Trait] = parse_traits(
                traits_of_text(self.cleaned_data["traits"]),
                attribute_error=self.connection.partner.trait_attribute_error,
            )
        except TraitsError as exc:
            raise ValidationError(str(exc)) from None
        return [trait.to_dict() for trait in parsed]
