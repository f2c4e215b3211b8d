"""Forms of the cohort pages. They collect input; cohorts.services validates and applies it."""

from django import forms

from cohorts.models import MAX_IDENTIFIER_LENGTH, IdType
from cohorts.services import MAX_PASTED_IDENTIFIERS


class CohortNameForm(forms.Form):
    name = forms.CharField(max_length=255)


class CohortSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=255, label="Name contains")


class ChangeMembersForm(forms.Form):
    id_type = forms.ChoiceField(choices=IdType.choices, label="Identifier type")
    alias_label = forms.CharField(
        required=False,
        max_length=MAX_IDENTIFIER_LENGTH,
        help_text="User aliases only: the label every pasted alias has.",
    )
    text = forms.CharField(
        label="Identifiers",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false"}),
        help_text=(
            "One per line, or separated by commas or spaces. "
            f"At most {MAX_PASTED_IDENTIFIERS:,} at a time."
        ),
    )


class MemberSearchForm(forms.Form):
    q = forms.CharField(
        min_length=2,
        max_length=MAX_IDENTIFIER_LENGTH,
        label="Identifier",
        help_text="An exact identifier of any type, or the start of a primary identifier.",
    )
