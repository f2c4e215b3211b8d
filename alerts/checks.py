"""System checks: `check --deploy` warns while SITE_URL still points at this machine, since every
link in an alert (mail or webhook) starts with it and would lead the reader nowhere."""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Warning

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}  # noqa: S104 (names, not a bind)


def check_site_url(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    url = str(getattr(settings, "SITE_URL", ""))
    host = urlsplit(url).hostname or ""
    if host and host not in LOCAL_HOSTS and not host.endswith(".localhost"):
        return []
    return [
        Warning(
            f"SITE_URL is {url or 'empty'}: the links in alerts would lead nowhere.",
            hint="Set SITE_URL to the address people open cohortsync at, e.g. "
            "https://cohortsync.example.com.",
            id="alerts.W001",
        )
    ]
