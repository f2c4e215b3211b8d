"""Amplitude simulator: the cohort list of the Behavioral Cohorts API, behind HTTP Basic auth
with the project's API key and secret key (docs/partners/amplitude.md §1-§2, §12)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from connections.sandbox.state import JsonDict, SandboxState

Response = tuple[int, dict[str, str], JsonDict]

COHORTS_PATH = "/api/3/cohorts"


def owns(path: str) -> bool:
    return path == COHORTS_PATH


def _credentials(authorization: str) -> tuple[str, str] | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    api_key, colon, secret_key = decoded.partition(":")
    return (api_key, secret_key) if colon else None


def handle(
    state: SandboxState, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> Response:
    if method != "GET":
        return 405, {"Allow": "GET"}, {"error": "Method Not Allowed"}
    credentials = _credentials(headers.get("authorization", ""))
    with state.lock:
        if credentials is None or credentials not in state.amplitude_keys:
            return 401, {}, {"error": "Invalid API key or secret key"}
        return 200, {}, {"cohorts": [dict(cohort) for cohort in state.amplitude_cohorts]}
