"""Local Braze + AppsFlyer simulator for tests and demos (standard library only).

with SandboxServer() as sandbox:
    requests.post(f"{sandbox.url}/users/track", ...)
"""

from .server import SandboxServer
from .state import DEMO_APPSFLYER_TOKEN, DEMO_BRAZE_KEY, SandboxState

__all__ = ["DEMO_APPSFLYER_TOKEN", "DEMO_BRAZE_KEY", "SandboxServer", "SandboxState"]
