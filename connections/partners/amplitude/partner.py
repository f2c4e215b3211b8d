"""Amplitude: a source of cohorts. The connection holds the project's API key and secret key;
"Test connection" lists the project's cohorts (docs/partners/amplitude.md §1-§2)."""

import base64
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from connections.partners.amplitude import simulator as amplitude_simulator
from connections.partners.amplitude.config import AmplitudeConfig, AmplitudeConfigForm
from connections.partners.base import Direction, Partner, SimulatorEndpoints, SyncOptionsForm
from connections.partners.http import PartnerError, call

COHORTS_PATH = "/api/3/cohorts"
# Cohort names the check's message lists before it only counts the rest.
NAMES_SHOWN = 10
UNREADABLE = (
    "The stored Amplitude credentials cannot be read: enter the API key and secret key again."
)


class Amplitude(Partner):
    kind = "amplitude"
    label = "Amplitude"
    description = "Take cohorts from an Amplitude project (source)"
    directions = frozenset({Direction.SOURCE})
    downloads_cohorts = True
    credential_label = "API key and secret key"
    config_form = AmplitudeConfigForm
    config_class = AmplitudeConfig
    # A source: nothing is sent to Amplitude, so there is no identifier and no sync option.
    identifiers = ()
    sync_options_form = SyncOptionsForm
    simulator: ClassVar[SimulatorEndpoints] = amplitude_simulator

    config: AmplitudeConfig

    @classmethod
    def secret_fields(cls) -> dict[str, str]:
        return {"api_key": "API key", "secret_key": "Secret key"}

    @classmethod
    def pack_secret(cls, parts: Mapping[str, str]) -> str:
        return json.dumps({"api_key": parts["api_key"], "secret_key": parts["secret_key"]})

    @classmethod
    def hinted_part(cls, secret: str) -> str:
        # The secret key's end, as for every other credential; never the packed JSON's.
        try:
            return str(json.loads(secret)["secret_key"])
        except (ValueError, TypeError, KeyError):
            return ""

    @classmethod
    def simulator_config(cls, endpoint: str) -> dict[str, Any]:
        return {"region": "us", "project_name": "Sandbox project", "api_host": endpoint}

    def _keys(self) -> tuple[str, str]:
        try:
            parts = json.loads(self.secret)
            api_key, secret_key = parts["api_key"], parts["secret_key"]
        except (ValueError, TypeError, KeyError):
            raise ValueError(UNREADABLE) from None
        if not (isinstance(api_key, str) and isinstance(secret_key, str)):
            raise ValueError(UNREADABLE)
        return api_key, secret_key

    def basic_auth(self) -> tuple[str, str]:
        """(the Authorization header, the secret to redact from messages): HTTP Basic,
        api_key:secret_key (docs/partners/amplitude.md §1)."""
        api_key, secret_key = self._keys()
        token = base64.b64encode(f"{api_key}:{secret_key}".encode()).decode()
        return f"Basic {token}", secret_key

    def list_cohorts(self) -> list[dict[str, Any]]:
        """The project's cohorts as Amplitude lists them (HTTP Basic, api_key:secret_key)."""
        authorization, secret_key = self.basic_auth()
        response = call(
            "GET",
            f"{self.config.base_url}{COHORTS_PATH}",
            secret=secret_key,
            authorization=authorization,
        )
        cohorts = response.body.get("cohorts") if isinstance(response.body, dict) else None
        if not isinstance(cohorts, list) or not all(isinstance(c, dict) for c in cohorts):
            raise PartnerError(
                "Amplitude accepted the keys but its answer carried no cohort list.",
                status=response.status,
                body=response.body,
            )
        return cohorts

    def check(self) -> str:
        cohorts = self.list_cohorts()
        project = self.config.project_name
        if not cohorts:
            return f"Amplitude accepted the keys: {project} has no cohorts yet."
        names = [str(cohort.get("name") or cohort.get("id") or "?") for cohort in cohorts]
        shown = ", ".join(names[:NAMES_SHOWN])
        more = len(names) - NAMES_SHOWN
        rest = f" and {more:,} more" if more > 0 else ""
        plural = "" if len(cohorts) == 1 else "s"
        return (
            f"Amplitude accepted the keys: {project} has {len(cohorts):,} cohort{plural}: "
            f"{shown}{rest}."
        )
