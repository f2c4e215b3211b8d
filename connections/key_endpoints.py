"""What a data-import key opens, told to the partner that gets it: each endpoint's full URL,
where the key goes (a header or a body field), and a minimal request to copy (curl).

The key itself never appears: examples read it from $COHORTSYNC_IMPORT_KEY. Every key opens
the Braze-compatible import API under its partner's name; an `amplitude` key also opens the
Cohort Webhooks endpoint, the only one Amplitude can be pointed at (docs/partners/amplitude.md
§11). The URLs are reversed by name: the views live in cohorts/inbound/, above this app.
"""

import json
import shlex
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import reverse

from connections.models import ImportKey

KEY_VARIABLE = "COHORTSYNC_IMPORT_KEY"
KEY_PLACEHOLDER = f"${KEY_VARIABLE}"


@dataclass(frozen=True)
class KeyEndpoint:
    """One endpoint a key opens. `body` and `headers` carry KEY_PLACEHOLDER where the key goes."""

    slug: str
    title: str
    url: str
    key_location: str
    instructions: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def curl(self) -> str:
        """The request as a shell command; double quotes, so the shell fills in the key."""
        lines = [f"curl -X POST {shlex.quote(self.url)}"]
        lines += [f'-H "{name}: {value}"' for name, value in self.headers.items()]
        payload = json.dumps(self.body).replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'-d "{payload}"')
        return " \\\n  ".join(lines)


def _url(name: str, **kwargs: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}{reverse(name, kwargs=kwargs)}"


def _amplitude_webhook() -> KeyEndpoint:
    return KeyEndpoint(
        slug="amplitude-webhook",
        title="Amplitude Cohort Webhooks",
        url=_url("amplitude_webhook"),
        key_location=f"Header Authorization: Bearer {KEY_PLACEHOLDER}",
        instructions=(
            "In Amplitude: Data → Catalog → Destinations → Cohorts → Webhook. Paste this URL, "
            "add the header Authorization with the value Bearer followed by a space and the "
            "key, keep the default payload, then sync cohorts to it."
        ),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {KEY_PLACEHOLDER}",
        },
        body={
            "cohort_name": "My Test Cohort",
            "cohort_id": "7khm89cz",
            "in_cohort": True,
            "computed_time": "1692206763",
            "message_id": "9baaa88f-9d46-4ee5-a946-be0c6aea0046::enter::0",
            "users": [{"user_id": "user_one@example.com"}],
        },
    )


def _braze_compatible(partner: str) -> list[KeyEndpoint]:
    location = f"Body field client_secret (or the header Authorization: Bearer {KEY_PLACEHOLDER})"
    headers = {"Content-Type": "application/json"}
    return [
        KeyEndpoint(
            slug="cohorts",
            title="Braze-compatible: create or rename a cohort",
            url=_url("inbound_cohorts", partner=partner),
            key_location=location,
            instructions="Where a partner pushes to Braze's cohort-import API, enter cohortsync "
            "as the REST endpoint and this key as the data-import key.",
            headers=headers,
            body={
                "client_secret": KEY_PLACEHOLDER,
                "cohort_id": "coh_8f2a",
                "name": "Churn risk (Q3)",
                "created_at": "2025-07-01T09:30:00Z",
            },
        ),
        KeyEndpoint(
            slug="cohort-users",
            title="Braze-compatible: add and remove members",
            url=_url("inbound_cohort_users", partner=partner),
            key_location=location,
            instructions="At most 1,000 identifiers per request; create the cohort first.",
            headers=headers,
            body={
                "client_secret": KEY_PLACEHOLDER,
                "cohort_id": "coh_8f2a",
                "cohort_changes": [
                    {"user_ids": ["u-1001", "u-1002"]},
                    {"user_ids": ["u-0999"], "should_remove": True},
                ],
            },
        ),
    ]


def endpoints_for(key: ImportKey) -> list[KeyEndpoint]:
    """The endpoints `key` opens, the one its partner is most likely to use first."""
    endpoints = _braze_compatible(key.partner)
    if key.partner == ImportKey.Partner.AMPLITUDE:
        return [_amplitude_webhook(), *endpoints]
    return endpoints
