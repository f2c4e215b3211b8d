"""AppsFlyer: audiences filled through the Audiences Import API v2 (add / remove)."""

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import requests
from django import forms

from connections.partners.appsflyer_payload import device_limit, device_rows, import_payload
from connections.partners.base import (
    BatchResult,
    BatchTooLarge,
    ConfigError,
    Partner,
    PartnerConfig,
    PartnerError,
    PartnerResponse,
    Recipient,
    call,
    normalise_endpoint,
)

DEFAULT_API_HOST = "https://hq1.appsflyer.com"
PLATFORMS = {"android": "Android", "ios": "iOS"}
ANDROID_APP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$")
IOS_APP_ID = re.compile(r"^id\d{5,15}$")
IMPORT_PATH = "/api/audiences-import-api/v2"
AUDIENCE_PATH = "/api/audiences-external-api/audience"
AUDIENCE_NAME_EXISTS = 1001
AUDIENCE_NAME_LENGTH = (2, 100)


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AppsFlyerConfigForm(forms.Form):
    app_id = forms.CharField(max_length=100, help_text="com.example.app or id123456789")
    platform = forms.ChoiceField(choices=list(PLATFORMS.items()))
    api_host = forms.CharField(
        max_length=200, initial=DEFAULT_API_HOST, help_text="Leave as is unless told otherwise"
    )
    batch_size = forms.IntegerField(min_value=1, max_value=100_000, initial=10_000)


class AppsFlyer(Partner):
    kind = "appsflyer"
    label = "AppsFlyer"
    credential_label = "API V2 token"
    config_form = AppsFlyerConfigForm
    config_class = AppsFlyerConfig

    config: AppsFlyerConfig

    @classmethod
    def account_key(cls, config: AppsFlyerConfig) -> str:
        return f"appsflyer:{config.app_id}"

    def check(self) -> str:
        # A read-only call with the same token the import API takes (403 when refused).
        call(
            "GET",
            f"{self.config.api_host}/api/audiences-external-api/connections",
            secret=self.secret,
        )
        return "AppsFlyer accepted the API V2 token."

    def max_batch_size(self) -> int:
        return self.config.batch_size

    def send_batch(
        self,
        *,
        cohort_label: str,
        add: Sequence[Recipient],
        remove: Sequence[Recipient],
        options: Mapping[str, Any],
        session: requests.Session | None = None,
    ) -> BatchResult:
        """`add` then `remove` on the audience named by `options["import_key"]`.

        Recipients whose identifier the platform does not accept fail here without being sent:
        AppsFlyer would refuse the whole request for one such row. AppsFlyer names the audience
        by its import key, so `cohort_label` is not sent.
        """
        import_key = options.get("import_key")
        if not isinstance(import_key, str) or not import_key.strip():
            raise ValueError(
                "An AppsFlyer sync needs options['import_key']: the audience's import key, "
                "from its page in AppsFlyer Audiences or from create_audience()."
            )
        size = len(add) + len(remove)
        if size > self.config.batch_size:
            raise ValueError(
                f"{size} recipients exceed this connection's batch size of "
                f"{self.config.batch_size} devices."
            )
        accepted: list[int] = []
        failed: list[tuple[int, str]] = []
        sent = status = 0
        # Add and remove are separate endpoints. If the remove request fails after the add
        # succeeded, the engine resends the whole batch; re-adding the same devices is harmless.
        for action, recipients in (("add", add), ("remove", remove)):
            rows = device_rows(recipients, app_id=self.config.app_id, platform=self.config.platform)
            failed.extend(rows.refused)
            if not rows.devices:
                # AppsFlyer answers an empty device list with 400.
                continue
            response = self._post(
                f"{IMPORT_PATH}/{action}",
                import_payload(
                    import_key=import_key, platform=self.config.platform, devices=rows.devices
                ),
                session=session,
            )
            sent += 1
            status = response.status
            # A 200 is all or nothing: AppsFlyer reports no per-device outcome.
            accepted.extend(rows.refs)
        return BatchResult(accepted=accepted, failed=failed, requests=sent, status=status)

    def prepare_sync(self, *, cohort_label: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """A sync without an audience gets one on its first run, named after the cohort."""
        prepared = dict(options)
        if not str(prepared.get("import_key") or "").strip():
            name = f"{cohort_label}-{prepared.get('audience_suffix') or 'cohortsync'}"
            prepared["import_key"] = self.create_audience(name=name)
            prepared["audience_name"] = name[:100]
        return prepared

    def create_audience(self, *, name: str, session: requests.Session | None = None) -> str:
        """A new imported audience on this connection's platform; returns its import key."""
        shortest, longest = AUDIENCE_NAME_LENGTH
        audience_name = name.strip()[:longest]
        if len(audience_name) < shortest:
            raise ValueError(
                f"An AppsFlyer audience name needs {shortest} to {longest} characters."
            )
        try:
            response = self._post(
                AUDIENCE_PATH,
                {"audience_name": audience_name, "platform": self.config.platform},
                session=session,
            )
        except PartnerError as exc:
            if isinstance(exc.body, dict) and exc.body.get("error_code") == AUDIENCE_NAME_EXISTS:
                raise PartnerError(
                    f"An AppsFlyer audience named {audience_name!r} already exists; choose "
                    "another name or use that audience's import key.",
                    status=exc.status,
                    retryable=False,
                    body=exc.body,
                ) from None
            raise
        message = response.body.get("message") if isinstance(response.body, dict) else None
        import_key = message.get("import_key") if isinstance(message, dict) else None
        if not isinstance(import_key, str) or not import_key:
            raise PartnerError(
                "AppsFlyer created the audience but its answer carried no import_key.",
                status=response.status,
                body=response.body,
            )
        return import_key

    def _post(
        self, path: str, payload: dict[str, Any], *, session: requests.Session | None
    ) -> PartnerResponse:
        """call(), plus the one 400 the engine can act on: too many devices per request."""
        try:
            return call(
                "POST",
                f"{self.config.api_host}{path}",
                secret=self.secret,
                payload=payload,
                session=session,
            )
        except PartnerError as exc:
            limit = device_limit(exc.message) if exc.status == 400 else None
            if limit is not None:
                raise BatchTooLarge(exc.message, limit=limit, body=exc.body) from None
            raise
