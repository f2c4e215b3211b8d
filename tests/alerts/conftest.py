"""Fixtures for the alert tests: a real local webhook receiver and retries that do not wait."""

from collections.abc import Iterator

import pytest

from alerts import channels, queue
from tests.alerts.helpers import WebhookReceiver


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without waiting (an interval of 0 requeues at once, so a burst worker runs every
    attempt), and a short webhook timeout for the test that hangs."""
    monkeypatch.setattr(queue, "RETRY_BACKOFF_SECONDS", [0, 0])
    monkeypatch.setattr(channels, "WEBHOOK_TIMEOUT_SECONDS", 0.5)
