"""An Amplitude connection's settings: the project's region (which API host it lives on) and
its name, plus an API host override for the partner simulator."""

from dataclasses import asdict, dataclass
from typing import Any

from django import forms

from connections.partners.base import ConfigError, PartnerConfig
from connections.partners.http import normalise_endpoint

# docs/partners/amplitude.md §1: not analytics.amplitude.com, which is the web UI.
REGION_HOSTS = {"us": "https://amplitude.com", "eu": "https://analytics.eu.amplitude.com"}
REGIONS = {"us": "US", "eu": "EU"}
MAX_PROJECT_NAME = 100


@dataclass(frozen=True)
class AmplitudeConfig(PartnerConfig):
    region: str
    project_name: str
    # Blank: the region's host. Set only to reach another address (the partner simulator).
    api_host: str = ""

    def __post_init__(self) -> None:
        if self.region not in REGION_HOSTS:
            raise ConfigError("The region must be us or eu.", "region")
        name = str(self.project_name).strip()
        if not name or len(name) > MAX_PROJECT_NAME:
            raise ConfigError(
                f"Enter the project's name (at most {MAX_PROJECT_NAME} characters).",
                "project_name",
            )
        object.__setattr__(self, "project_name", name)
        if self.api_host:
            object.__setattr__(
                self,
                "api_host",
                normalise_endpoint(self.api_host, what="API host", field="api_host"),
            )

    @property
    def base_url(self) -> str:
        return self.api_host or REGION_HOSTS[self.region]

    def endpoints(self) -> dict[str, str]:
        return {"api_host": self.api_host} if self.api_host else {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AmplitudeConfigForm(forms.Form):
    region = forms.ChoiceField(
        choices=list(REGIONS.items()),
        help_text="Where the project's data lives: US (amplitude.com) or EU "
        "(analytics.eu.amplitude.com).",
    )
    project_name = forms.CharField(
        max_length=MAX_PROJECT_NAME, help_text="As Amplitude names it, to tell projects apart."
    )
    api_host = forms.CharField(
        required=False,
        max_length=200,
        label="API host",
        help_text="Leave blank: the region decides it.",
    )
