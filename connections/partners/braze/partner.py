"""Braze: membership written as custom attributes through POST /users/track."""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import requests
from django import forms

from connections.partners.base import (
    BatchResult,
    Partner,
    RateLimit,
    RateLimitSignal,
    Recipient,
    SharedArray,
    SimulatorEndpoints,
    SyncOptionsForm,
    describe_settings,
)
from connections.partners.braze import simulator as braze_simulator
from connections.partners.braze.array_cap import ARRAY_MODES, BRAZE_ARRAY_CAP
from connections.partners.braze.config import (
    EMPTY_BATCH_MESSAGE,
    IDENTIFIERS,
    MEMBERSHIP_MODES,
    BrazeConfig,
    BrazeConfigForm,
)
from connections.partners.braze.payload import build_track_payload, split_outcome
from connections.partners.http import PartnerError, call


class BrazeSyncOptions(SyncOptionsForm):
    membership_mode = forms.ChoiceField(
        required=False,
        widget=forms.RadioSelect,
        initial="",
        label="Membership in Braze",
        help_text="How Braze profiles show membership. The connection sets the default; this "
        "sync may use another.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        usual = (
            f"As the connection says: {MEMBERSHIP_MODES[self.config.membership_mode].lower()}"
            if isinstance(self.config, BrazeConfig)
            else "As the connection says"
        )
        field = self.fields["membership_mode"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", usual), *MEMBERSHIP_MODES.items()]


class Braze(Partner):
    kind = "braze"
    label = "Braze"
    description = "Write cohort membership to Braze profiles (/users/track)"
    credential_label = "REST API key"
    config_form = BrazeConfigForm
    config_class = BrazeConfig
    identifiers = tuple(IDENTIFIERS)
    membership_modes = MEMBERSHIP_MODES
    sync_options_form = BrazeSyncOptions
    simulator: ClassVar[SimulatorEndpoints] = braze_simulator

    config: BrazeConfig

    @classmethod
    def simulator_config(cls, endpoint: str) -> dict[str, Any]:
        return {"instance": "custom", "custom_endpoint": endpoint}

    @classmethod
    def config_facts(cls, config: BrazeConfig) -> list[tuple[str, str]]:
        """The rate limit as one row, and the array attribute only where membership uses it."""
        settings = config.to_dict()
        del settings["rate_limit_requests"], settings["rate_limit_seconds"]
        if config.membership_mode not in ARRAY_MODES:
            del settings["array_attribute"]
        rows = describe_settings(settings, cls.config_form())
        return [*rows, ("Rate limit", cls.rate_limit(config).text)]

    @classmethod
    def default_identifier(cls, config: BrazeConfig) -> str:
        return config.default_identifier

    @classmethod
    def default_membership_mode(cls, config: BrazeConfig) -> str:
        return config.membership_mode

    @classmethod
    def rate_limit(cls, config: BrazeConfig) -> RateLimit:
        return RateLimit(config.rate_limit_requests, config.rate_limit_seconds)

    @classmethod
    def applies_every_add(cls, config: BrazeConfig) -> bool:
        return not config.update_existing_only

    @classmethod
    def shared_array(
        cls, config: BrazeConfig, options: Mapping[str, Any] | None
    ) -> SharedArray | None:
        if cls.membership_mode(config, options) not in ARRAY_MODES:
            return None
        return SharedArray(config.array_attribute, BRAZE_ARRAY_CAP)

    def check(self) -> str:
        url = f"{self.config.rest_endpoint}/users/track"
        try:
            call("POST", url, secret=self.secret, payload={"attributes": []})
        except PartnerError as exc:
            if exc.status == 400 and EMPTY_BATCH_MESSAGE in exc.message:
                return "Braze accepted the REST API key (users.track permission)."
            raise
        return "Braze accepted the REST API key."

    def max_batch_size(self) -> int:
        return self.config.objects_per_request

    def send_batch(
        self,
        *,
        cohort_label: str,
        add: Sequence[Recipient],
        remove: Sequence[Recipient],
        options: Mapping[str, Any],
        session: requests.Session | None = None,
    ) -> BatchResult:
        """One `/users/track` request; objects Braze rejects by index fail, the rest pass."""
        size = len(add) + len(remove)
        if size > self.config.objects_per_request:
            # Braze would refuse the whole request with 400 "Max Input Length Exceeded".
            raise ValueError(
                f"{size} recipients exceed Braze's {self.config.objects_per_request} per request."
            )
        if size == 0:
            return BatchResult(accepted=[], failed=[], requests=0, status=0)
        payload, refs = build_track_payload(
            cohort_label=cohort_label,
            add=add,
            remove=remove,
            mode=str(options.get("membership_mode", self.config.membership_mode)),
            array_attribute=self.config.array_attribute,
            update_existing_only=self.config.update_existing_only,
            default_alias_label=self.config.alias_label,
        )
        response = call(
            "POST",
            f"{self.config.rest_endpoint}/users/track",
            secret=self.secret,
            payload=payload,
            session=session,
        )
        accepted, failed = split_outcome(response.body, refs)
        return BatchResult(
            accepted=accepted,
            failed=failed,
            requests=1,
            status=response.status,
            rate_limit=RateLimitSignal.from_headers(response.headers),
        )
