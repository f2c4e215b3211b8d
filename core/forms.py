from datetime import datetime, time
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from core.models import AuditEntry


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=254, label="Who")
    action = forms.CharField(
        required=False, max_length=64, help_text="The code, or its start: e.g. import_key."
    )
    target_type = forms.ChoiceField(required=False, label="On")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        types = AuditEntry.objects.order_by().values_list("target_type", flat=True).distinct()
        field = self.fields["target_type"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "anything")] + [(t, t) for t in types if t]

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("'Since' must not be after 'until'.")
        return data

    def apply(self, entries: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        data = self.cleaned_data
        if data["actor"]:
            entries = entries.filter(actor_label__icontains=data["actor"])
        if data["action"]:
            entries = entries.filter(action__startswith=data["action"])
        if data["target_type"]:
            entries = entries.filter(target_type=data["target_type"])
        zone = timezone.get_current_timezone()
        if data["since"]:
            entries = entries.filter(
                created_at__gte=datetime.combine(data["since"], time.min, zone)
            )
        if data["until"]:
            entries = entries.filter(
                created_at__lte=datetime.combine(data["until"], time.max, zone)
            )
        return entries
