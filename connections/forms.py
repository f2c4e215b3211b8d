"""The connection form: a name and a secret, plus the partner's own config form."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from connections.models import Connection
from connections.partners import PARTNERS
from connections.partners.base import ConfigError, PartnerConfig
from connections.partners.http import check_endpoints


class ConnectionForm(forms.Form):
    """`cleaned_data["secret"]` is the one secret to store (the credential's parts packed by the
    partner), or "" to keep the stored one when editing."""

    name = forms.CharField(max_length=100)

    def __init__(self, *args: Any, kind: str, instance: Connection | None = None, **kwargs: Any):
        partner = PARTNERS[kind]
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {"name": instance.name, **instance.config}
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.instance = instance
        self.partner_form = partner.config_form(*args, **kwargs)
        self.config: PartnerConfig | None = None
        self.secret_names = list(partner.secret_fields())
        for name, label in partner.secret_fields().items():
            self.fields[name] = forms.CharField(
                label=label,
                required=instance is None,
                strip=True,
                max_length=2000,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
            )
        if instance is not None:
            # One masked hint for the whole credential, under its last field.
            self.fields[
                self.secret_names[-1]
            ].help_text = f"Stored as {instance.masked_secret}. Leave blank to keep it."

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a name.")
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        parts = {name: cleaned.get(name) or "" for name in self.secret_names}
        given = [name for name, value in parts.items() if value]
        if given and len(given) < len(parts):
            # The parts are stored together: one cannot be kept while another changes.
            labels = " and ".join(str(self.fields[name].label) for name in self.secret_names)
            raise forms.ValidationError(f"Enter the {labels} together, or leave all blank.")
        cleaned["secret"] = PARTNERS[self.kind].pack_secret(parts) if given else ""
        return cleaned

    def is_valid(self) -> bool:
        # Both forms are validated so every error shows at once.
        own = super().is_valid()
        partner = self.partner_form.is_valid()
        if not (own and partner):
            return False
        try:
            self.config = PARTNERS[self.kind].parse_config(self.partner_form.cleaned_data)
            # Where the endpoints resolve now: parsing a config makes no DNS query.
            check_endpoints(self.config)
        except ConfigError as exc:
            target = exc.field if exc.field in self.partner_form.fields else None
            self.partner_form.add_error(target, str(exc))
            return False
        return True

    @property
    def all_fields(self) -> list[forms.BoundField]:
        return [*self, *self.partner_form]


# What a setting sent as JSON may be: the form fields take text, numbers and true or false.
SCALARS = (str, int, float, bool, type(None))


def connection_form_for(
    kind: str,
    *,
    name: str | None,
    config: dict[str, Any],
    credentials: dict[str, str],
    instance: Connection | None = None,
) -> ConnectionForm:
    """The connection form filled from values sent as JSON (the REST API), so both check a
    connection the same way. What is not sent keeps what the page would post: a new connection
    its settings' defaults, an edited one its stored settings and name. Unknown settings or
    credential parts raise ValidationError (the form itself would silently drop them)."""
    partner = PARTNERS[kind]
    settings_form = partner.config_form()
    errors: dict[str, str] = {}
    for key, value in config.items():
        if key not in settings_form.fields:
            errors[f"config.{key}"] = (
                f"{partner.label} connections have no setting {key!r}; "
                f"settings: {', '.join(settings_form.fields)}."
            )
        elif not isinstance(value, SCALARS):
            errors[f"config.{key}"] = "Send text, a number, true or false."
    for key in credentials:
        if key not in partner.secret_fields():
            errors[f"credentials.{key}"] = (
                f"{partner.label} credentials have no part {key!r}; "
                f"parts: {', '.join(partner.secret_fields())}."
            )
    if errors:
        raise ValidationError(errors)
    if instance is None:
        current: dict[str, Any] = {
            field_name: field.initial
            for field_name, field in settings_form.fields.items()
            if field.initial is not None
        }
    else:
        current = {"name": instance.name, **instance.config}
    data = {**current, **config, **credentials}
    if name is not None:
        data["name"] = name
    return ConnectionForm(data=data, kind=kind, instance=instance)


def form_errors(form: ConnectionForm) -> ValidationError:
    """Every error of the form and its partner settings, settings under `config.<field>` and
    credential parts under `credentials.<part>`."""
    errors: dict[str, list[str]] = {}
    for field_name, messages in form.errors.items():
        key = f"credentials.{field_name}" if field_name in form.secret_names else field_name
        errors.setdefault(key, []).extend(str(message) for message in messages)
    for field_name, messages in form.partner_form.errors.items():
        key = field_name if field_name == "__all__" else f"config.{field_name}"
        errors.setdefault(key, []).extend(str(message) for message in messages)
    return ValidationError(errors)


class ConfirmDeleteForm(forms.Form):
    confirm_name = forms.CharField(max_length=100, label="Type the connection's name to confirm")

    def __init__(self, *args: Any, connection: Connection, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection = connection

    def clean_confirm_name(self) -> str:
        value: str = self.cleaned_data["confirm_name"].strip()
        if value != self.connection.name:
            raise forms.ValidationError("That is not this connection's name.")
        return value
