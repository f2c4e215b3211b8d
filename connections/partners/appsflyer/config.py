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
# Requests open at once, by default: each carries up to 10,000 devices and AppsFlyer publishes
# no limit, so a few in flight, not dozens.
DEFAULT_IN_FLIGHT = 4
MAX_IN_FLIGHT = 64


@dataclass(frozen=True)
class AppsFlyerConfig(PartnerConfig):
    app_id: str
    platform: str
    api_host: str = DEFAULT_API_HOST
    batch_size: int = 10_000
    # AppsFlyer publishes no rate limit for the import API (docs/partners/appsflyer.md §7): this
    # is our own cautious pace, shared by every run of the connection; lower it if AppsFlyer
    # answers 429 often.
    rate_limit_requests: int = 100
    rate_limit_seconds: int = 1
    max_concurrent_requests: int = DEFAULT_IN_FLIGHT

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
        if not (1 <= self.rate_limit_requests <= 100_000 and 1 <= self.rate_limit_seconds <= 3600):
            raise ConfigError(
                "The rate limit must be 1 to 100,000 requests per 1 to 3,600 s.",
                "rate_limit_requests",
            )
        if not 1 <= self.max_concurrent_requests <= MAX_IN_FLIGHT:
            raise ConfigError(
                f"Maximum concurrent requests must be 1 to {MAX_IN_FLIGHT}.",
                "max_concurrent_requests",
            )

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
        min_value=1,
        max_value=100_000,
        initial=10_000,
        label="Devices per request",
        help_text="AppsFlyer publishes no maximum; a run that meets its limit lowers this itself.",
    )
    rate_limit_requests = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100_000,
        initial=100,
        label="Rate limit: requests",
        help_text=(
            "AppsFlyer publishes no rate limit for this API: 100 requests per second is "
            "cohortsync's cautious default, shared by every run of this connection. Lower it "
            "if runs keep meeting 429 answers."
        ),
    )
    rate_limit_seconds = forms.IntegerField(
        required=False, min_value=1, max_value=3600, initial=1, label="Rate limit: per seconds"
    )
    max_concurrent_requests = forms.IntegerField(
        required=False,
        label="Maximum concurrent requests",
        min_value=1,
        max_value=MAX_IN_FLIGHT,
        initial=DEFAULT_IN_FLIGHT,
        help_text=(
            "Requests open at once, shared by every run of this connection. Each carries up to "
            "a batch of devices and AppsFlyer publishes no limit, so a few are enough."
        ),
    )
