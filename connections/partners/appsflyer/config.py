"""An AppsFlyer connection's settings: the app (id and platform), the API host, the batch size."""

import re
from dataclasses import asdict, dataclass
from typing import Any

from django import forms

from connections.partners.base import ConfigError, PartnerConfig
from connections.partners.http import normalise_endpoint

DEFAULT_API_HOST = "https://hq1.appsflyer.com"
PLATFORMS = {"android": "Android", "ios": "iOS"}
ANDROID_APP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$")
IOS_APP_ID = re.compile(r"^id\d{5,15}$")


@dataclass(frozen=True)
class AppsFlyerConfig(PartnerConfig):
    app_id: str
    platform: str
    api_host: str = DEFAULT_API_HOST
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ConfigError("The platform must be android or ios.", "platform")
        pattern, example = (
            (ANDROID_APP_ID, "com.example.app")
            if self.platform == "android"
            else (IOS_APP_ID, "id123456789")
        )
        if not pattern.match(self.app_id):
            raise ConfigError(
                f"{self.app_id!r} is not an AppsFlyer {PLATFORMS[self.platform]} app id "
                f"(like {example}).",
                "app_id",
            )
        object.__setattr__(
            self, "api_host", normalise_endpoint(self.api_host, what="API host", field="api_host")
        )
        if not 1 <= self.batch_size <= 100_000:
            raise ConfigError("The batch size must be 1 to 100,000 devices.", "batch_size")

    def endpoints(self) -> dict[str, str]:
        return {"api_host": self.api_host}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AppsFlyerConfigForm(forms.Form):
    app_id = forms.CharField(
        max_length=100, label="App ID", help_text="com.example.app or id123456789"
    )
    platform = forms.ChoiceField(choices=list(PLATFORMS.items()))
    api_host = forms.CharField(
        max_length=200,
        initial=DEFAULT_API_HOST,
        label="API host",
        help_text="Leave as is unless told otherwise",
    )
    batch_size = forms.IntegerField(
        min_value=1, max_value=100_000, initial=10_000, label="Devices per request"
    )
