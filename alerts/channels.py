"""The two ways an alert leaves: a JSON webhook (Slack-compatible `text`) and email.

Errors are described without the webhook URL: a Slack webhook URL is its own credential, and
`requests` puts the URL into its exception messages.
"""

import logging
import smtplib
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
from django.core.mail import send_mail

from core import egress, egress_http

WEBHOOK_TIMEOUT_SECONDS = 5.0
# What is kept of a failed delivery's answer (shown on the alerts page).
ANSWER_CHARS = 120


class _RedactWebhookPath(logging.Filter):
    """urllib3 logs each request's path at DEBUG, and a Slack webhook's secret is its path."""

    def __init__(self) -> None:
        super().__init__()
        self.current = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        secret = getattr(self.current, "path", "")
        if secret and secret in record.getMessage():
            record.msg, record.args = record.getMessage().replace(secret, "/••••"), None
        return True


_redact = _RedactWebhookPath()
logging.getLogger("urllib3.connectionpool").addFilter(_redact)


class DeliveryError(Exception):
    """The channel did not take the alert; `retryable` is false when trying again is useless."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def post_webhook(url: str, payload: dict[str, Any]) -> None:
    parts = urlsplit(url)
    secret = parts.path + (f"?{parts.query}" if parts.query else "")
    _redact.current.path = secret if len(secret) > 1 else ""
    try:
        # Under the egress policy (core/egress.py). Redirects are not followed: a 3xx is an
        # answer to fix, not a place to post the alert.
        with egress_http.session() as session:
            response = session.post(
                url, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS, allow_redirects=False
            )
    except egress.EgressRefused as exc:
        # The message names the host and address, never the path (the webhook's secret).
        raise DeliveryError(
            f"The webhook's address is not allowed: {exc}", retryable=False
        ) from None
    except requests.Timeout:
        raise DeliveryError(
            f"The webhook did not answer within {WEBHOOK_TIMEOUT_SECONDS:g} s."
        ) from None
    except requests.ConnectionError as exc:
        raise DeliveryError(_connection_problem(exc)) from None
    except requests.RequestException as exc:
        raise DeliveryError(f"The webhook request failed ({type(exc).__name__}).") from None
    finally:
        _redact.current.path = ""
    status = response.status_code
    if 300 <= status < 400:
        raise DeliveryError(
            f"The webhook answered HTTP {status}, a redirect, which is not followed: "
            "enter the URL the alerts should be posted to.",
            retryable=False,
        )
    if not 200 <= status < 300:
        # A short excerpt only: it is shown on the alerts page. Redacted before it is cut.
        body = response.text.replace(url, "••••")
        if len(secret) > 1:
            body = body.replace(secret, "/••••")
        body = egress.excerpt(body, ANSWER_CHARS)
        raise DeliveryError(f"The webhook answered HTTP {status}" + (f": {body}" if body else "."))


def _connection_problem(exc: requests.ConnectionError) -> str:
    # Only the kind of problem is taken from the exception: its text holds the URL.
    text = str(exc).lower()
    if "refused" in text:
        return "The webhook's server refused the connection."
    if "resolve" in text or "name or service not known" in text:
        return "The webhook's host name does not resolve."
    if "ssl" in text or "certificate" in text:
        return "The webhook's TLS certificate or handshake was refused."
    return "Could not connect to the webhook's server."


def send_email(recipients: list[str], subject: str, body: str) -> None:
    try:
        send_mail(subject, body, None, recipients, fail_silently=False)
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        # OSError covers refused connections and timeouts; ValueError a malformed header.
        raise DeliveryError(f"The mail was not sent: {type(exc).__name__}: {exc}"[:500]) from None
