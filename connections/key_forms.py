"""Forms for the data-import key pages. They parse input; connections.keys does the work."""

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.utils import timezone

from connections.keys import NAME_MAX_LENGTH
from connections.models import ImportKey

MAX_EXPIRY_DAYS = 3650
GRACE_CHOICES = [
    ("1", "1 hour"),
    ("24", "24 hours"),
    ("72", "72 hours"),
    ("168", "7 days"),
    ("0", "None: the old key stops working now"),
]


class ImportKeyForm(forms.Form):
    partner = forms.ChoiceField(choices=ImportKey.Partner.choices)
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        help_text="Where the key is used, e.g. “AppsFlyer Audiences production”.",
    )
    expires_in_days = forms.IntegerField(
        label="Expires in (days)",
        required=False,
        min_value=1,
        max_value=MAX_EXPIRY_DAYS,
        help_text=f"1 to {MAX_EXPIRY_DAYS} days. Leave empty for a key that does not expire.",
    )

    def expires_at(self) -> datetime | None:
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None


def _grace_choices() -> list[tuple[str, str]]:
    default = str(settings.IMPORT_KEY_ROTATION_GRACE_HOURS)
    choices = list(GRACE_CHOICES)
    if default not in dict(choices):
        choices.insert(0, (default, f"{default} hours"))
    return choices


class RotateForm(forms.Form):
    grace_hours = forms.TypedChoiceField(
        label="Keep the old key working for",
        coerce=int,
        choices=GRACE_CHOICES,
        help_text="Time for the partner to switch to the new key.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["grace_hours"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = _grace_choices()
        field.initial = str(settings.IMPORT_KEY_ROTATION_GRACE_HOURS)

    def grace(self) -> timedelta:
        return timedelta(hours=self.cleaned_data["grace_hours"])
