"""The filters of a sync's run history: by status and by trigger, read from the query string.

A value that is not a status or a trigger is an error shown next to its field, never silently
dropped: a page that claimed to show failed runs while listing every run would mislead.
"""

from django import forms
from django.db.models import QuerySet

from syncs.models import SyncRun


class RunHistoryFilter(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *SyncRun.Status.choices], required=False
    )
    trigger = forms.ChoiceField(
        choices=[("", "Any trigger"), *SyncRun.Trigger.choices], required=False
    )

    def apply(self, runs: QuerySet[SyncRun]) -> QuerySet[SyncRun]:
        """Call once the form is valid."""
        for name in ("status", "trigger"):
            if value := self.cleaned_data[name]:
                runs = runs.filter(**{name: value})
        return runs
