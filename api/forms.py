"""The profile page's form. It parses input; api.tokens does the work."""

from django import forms

from api.tokens import NAME_MAX_LENGTH


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        help_text="What uses it, e.g. “nightly export script”.",
    )
