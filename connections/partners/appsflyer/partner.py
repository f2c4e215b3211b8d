"""AppsFlyer: audiences filled through the Audiences Import API v2 (add / remove)."""

import secrets
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django import forms

from connections.partners.appsflyer import simulator as appsflyer_simulator
from connections.partners.appsflyer.config import PLATFORMS, AppsFlyerConfig, AppsFlyerConfigForm
from connections.partners.appsflyer.payload import device_limit, device_rows, import_payload
from connections.partners.appsflyer.redaction import redact_import_request
from connections.partners.base import (
    BatchResult,
    Partner,
    Prepared,
    RateLimit,
    Recipient,
    SimulatorEndpoints,
    SyncOptionsForm,
)
from connections.partners.http import BatchTooLarge, PartnerError, PartnerResponse, call
from connections.partners.redaction import RedactedRequest
from core.egress_client import EgressClient

IMPORT_PATH = "/api/audiences-import-api/v2"
AUDIENCE_PATH = "/api/audiences-external-api/audience"
AUDIENCE_NAME_EXISTS = 1001
AUDIENCE_NAME_LENGTH = (2, 100)
# Audiences take different device identifiers per platform (docs/partners/appsflyer.md §4).
NOT_ON_PLATFORM = {"android": {"idfv"}, "ios": {"gaid", "oaid"}}
DEVICE_FAMILY = {"idfv": "iOS", "gaid": "Android", "oaid": "Android"}


class AppsFlyerSyncOptions(SyncOptionsForm):
    import_key = forms.CharField(
        required=False,
        max_length=200,
        label="AppsFlyer audience import key",
        help_text="Leave blank and the first run creates an audience named after the cohort.",
    )


class AppsFlyer(Partner):
    kind = "appsflyer"
    label = "AppsFlyer"
    description = "Fill AppsFlyer audiences (Audiences Import API)"
    credential_label = "API V2 token"
    config_form = AppsFlyerConfigForm
    config_class = AppsFlyerConfig
    identifiers = ("gaid", "oaid", "idfv", "external_id", "amplitude_id", "braze_id")
    identifier_names = {"external_id": "customer user ID (cuid)"}
    sync_options_form = AppsFlyerSyncOptions
    # Written by prepare_sync (the audience made on the first run), kept across edits.
    kept_sync_options = ("import_key", "audience_suffix", "audience_name")
    simulator: ClassVar[SimulatorEndpoints] = appsflyer_simulator

    config: AppsFlyerConfig

    @classmethod
    def simulator_config(cls, endpoint: str) -> dict[str, Any]:
        return {"app_id": "com.example.app", "platform": "android", "api_host": endpoint}

    @classmethod
    def unavailable_reason(cls, config: AppsFlyerConfig, identifier: str) -> str | None:
        if identifier in NOT_ON_PLATFORM.get(config.platform, set()):
            return (
                f"Not on an {PLATFORMS[config.platform]} app: it identifies "
                f"{DEVICE_FAMILY[identifier]} devices."
            )
        return super().unavailable_reason(config, identifier)

    @classmethod
    def rate_limit(cls, config: AppsFlyerConfig) -> RateLimit:
        return RateLimit(config.rate_limit_requests, config.rate_limit_seconds)

    @classmethod
    def clean_sync_options(
        cls,
        config: AppsFlyerConfig,
        options: Mapping[str, Any],
        *,
        current: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        cleaned = super().clean_sync_options(config, options, current=current)
        if current is None and not cleaned.get("import_key"):
            # The audience is created on the first run as "<cohort name>-<short id>".
            cleaned["audience_suffix"] = secrets.token_hex(3)
        return cleaned

    @classmethod
    def account_key(cls, config: AppsFlyerConfig) -> str:
        return f"appsflyer:{config.app_id}"

    @classmethod
    def redact_request(cls, path: str, body: Any, *, sample: int) -> RedactedRequest:
        return redact_import_request(body, sample=sample)

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
        client: EgressClient | None = None,
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
                client=client,
            )
            sent += 1
            status = response.status
            # A 200 is all or nothing: AppsFlyer reports no per-device outcome.
            accepted.extend(rows.refs)
        return BatchResult(accepted=accepted, failed=failed, requests=sent, status=status)

    def prepare_sync(self, *, cohort_label: str, options: Mapping[str, Any]) -> Prepared:
        """A sync without an audience gets one on its first run, named after the cohort."""
        prepared = dict(options)
        if str(prepared.get("import_key") or "").strip():
            return Prepared(prepared)
        name = f"{cohort_label}-{prepared.get('audience_suffix') or 'cohortsync'}"
        prepared["import_key"] = self.create_audience(name=name)
        prepared["audience_name"] = name[:100]
        return Prepared(prepared, requests=1)

    def create_audience(self, *, name: str, client: EgressClient | None = None) -> str:
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
                client=client,
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
        self, path: str, payload: dict[str, Any], *, client: EgressClient | None
    ) -> PartnerResponse:
        """call(), plus the one 400 the engine can act on: too many devices per request."""
        try:
            return call(
                "POST",
                f"{self.config.api_host}{path}",
                secret=self.secret,
                payload=payload,
                client=client,
            )
        except PartnerError as exc:
            limit = device_limit(exc.message) if exc.status == 400 else None
            if limit is not None:
                raise BatchTooLarge(exc.message, limit=limit, body=exc.body) from None
            raise
