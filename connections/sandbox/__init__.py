"""The partner simulator for tests and demos (standard library only): the HTTP server and its
control endpoints here, each partner's endpoints in its own package (`simulator.py`).

with SandboxServer() as sandbox:  # from connections.sandbox.server
    requests.post(f"{sandbox.url}/users/track", ...)
"""

from connections.sandbox.state import (
    DEMO_AMPLITUDE_API_KEY,
    DEMO_AMPLITUDE_SECRET_KEY,
    DEMO_APPSFLYER_TOKEN,
    DEMO_BRAZE_KEY,
    SandboxState,
)

__all__ = [
    "DEMO_AMPLITUDE_API_KEY",
    "DEMO_AMPLITUDE_SECRET_KEY",
    "DEMO_APPSFLYER_TOKEN",
    "DEMO_BRAZE_KEY",
    "SandboxState",
]
