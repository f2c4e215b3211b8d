"""The demo that `make run` seeds, and what it leaves in var/ for later: the admin's password, so
the stack can repeat how to log in once it is up, and var/dev.env, so the manage.py commands the
README prints run in development mode in this checkout without DEBUG=true typed in front."""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError

from connections.sandbox import (
    DEMO_AMPLITUDE_API_KEY,
    DEMO_AMPLITUDE_SECRET_KEY,
    DEMO_APPSFLYER_TOKEN,
    DEMO_BRAZE_KEY,
)

DEMO_EMAIL = "admin@example.com"
DEV_ENV = (
    "# Written by `make run` (manage.py seed_demo): this checkout is a development one, so\n"
    "# manage.py commands run with DEBUG=true here. Delete it to stop that; never deploy it.\n"
    "DEBUG=true\n"
)


def _password_file() -> Path:
    return Path(settings.VAR_DIR) / "demo-admin-password"


def demo_password() -> str:
    """The demo admin's password: random per checkout, made on first use, kept in var/."""
    path = _password_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(12) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def write_dev_env() -> Path:
    """Mark this checkout as a development one for the settings (cohortsync/settings.py)."""
    path = Path(settings.DEV_ENV_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEV_ENV)
    return path


def login_line(url: str) -> str:
    """How to log in to the demo at `url`. The password is printed only while it is still the
    demo admin's: once someone changed it, or made their own users, the line says so instead."""
    path = _password_file()
    try:
        user = get_user_model().objects.filter(username=DEMO_EMAIL).first()
    except DatabaseError:  # not migrated yet: `make run` migrates first, runstack alone may not
        user = None
    if user is not None and path.exists() and user.check_password(path.read_text().strip()):
        return f"log in at {url} as {DEMO_EMAIL} with the password {path.read_text().strip()}"
    return (
        f"log in at {url} with your account "
        "(.venv/bin/python manage.py createuser EMAIL --role admin makes one)"
    )


def simulator_credentials() -> str:
    """The partner simulator's own credentials: made up, public, accepted only by the simulator.
    The demo connections already hold them; a connection of your own to the simulator needs
    them."""
    return (
        f"Braze REST API key {DEMO_BRAZE_KEY}, AppsFlyer V2 token {DEMO_APPSFLYER_TOKEN}, "
        f"Amplitude API key {DEMO_AMPLITUDE_API_KEY} with secret key {DEMO_AMPLITUDE_SECRET_KEY}"
    )
