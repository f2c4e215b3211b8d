"""The alert settings form: recipients, a webhook URL never rendered back, event toggles."""

from typing import Any

from django import forms

from alerts.models import AlertSettings
from alerts.services import TOGGLES, parse_recipients, validate_webhook_url


class AlertSettingsForm(forms.Form):
    email_enabled = forms.BooleanField(required=False, label="Send alerts by email")
    email_recipients = forms.CharField(
        required=False,
        max_length=4000,
        label="Email recipients",
        help_text="One address per line, or separated by commas.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    webhook_enabled = forms.BooleanField(required=False, label="Send alerts to a webhook")
    webhook_url = forms.CharField(
        required=False,
        strip=True,
        max_length=2000,
        label="Webhook URL",
        help_text="A Slack incoming webhook, or any URL that accepts a JSON POST.",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    remove_webhook = forms.BooleanField(required=False, label="Remove the stored webhook URL")
    on_run_failed = forms.BooleanField(required=False, label="A sync's run failed")
    on_partial_failure = forms.BooleanField(
        required=False, label="A run failed for many of its members (the threshold below)"
    )
    partial_failure_threshold_pct = forms.IntegerField(
        min_value=1,
        max_value=100,
        label="Share of failed members (%)",
        help_text="A run that reached the partner alerts when at least this share of the members "
        "it planned to send failed; the run page lists them.",
    )
    on_run_held = forms.BooleanField(
        required=False, label="A run was held by the mass-removal guard"
    )
    on_connection_needs_attention = forms.BooleanField(
        required=False, label="A connection needs attention"
    )
    on_recovery = forms.BooleanField(required=False, label="Each of these recovered")

    def __init__(self, *args: Any, instance: AlertSettings, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "email_enabled": instance.email_enabled,
                "email_recipients": "\n".join(instance.email_recipients),
                "webhook_enabled": instance.webhook_enabled,
                "on_run_failed": instance.on_run_failed,
                "on_partial_failure": instance.on_partial_failure,
                "partial_failure_threshold_pct": instance.partial_failure_threshold_pct,
                "on_run_held": instance.on_run_held,
                "on_connection_needs_attention": instance.on_connection_needs_attention,
                "on_recovery": instance.on_recovery,
            },
        )
        super().__init__(*args, **kwargs)
        self.instance = instance
        if instance.has_webhook:
            self.fields[
                "webhook_url"
            ].help_text = f"Stored as {instance.masked_webhook_url}. Leave blank to keep it."
        else:
            del self.fields["remove_webhook"]

    def clean_email_recipients(self) -> str:
        raw: str = self.cleaned_data["email_recipients"]
        parse_recipients(raw)  # a ValidationError here shows under the field
        return raw

    def clean_webhook_url(self) -> str:
        raw: str = self.cleaned_data["webhook_url"]
        if raw:
            validate_webhook_url(raw)
        return raw

    @property
    def toggles(self) -> dict[str, bool]:
        return {name: bool(self.cleaned_data[name]) for name in TOGGLES}

    @property
    def event_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in TOGGLES]
