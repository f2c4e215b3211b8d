"""Alert test helpers: a real local webhook receiver, and alert settings saved as an admin would."""

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alerts.models import AlertSettings
from alerts.services import update_alert_settings

ALL_EVENTS = {
    "on_run_failed": True,
    "on_run_held": True,
    "on_connection_needs_attention": True,
    "on_recovery": True,
}


class WebhookReceiver:
    """An http.server on 127.0.0.1 that keeps every POST and answers as told."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: deque[int] = deque()  # answers to give, in order; then 200
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                receiver.received.append({"path": self.path, "json": body})
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses.popleft() if receiver.statuses else 200
                payload = b"ok" if status == 200 else b"invalid_token"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        # The secret part of a Slack webhook URL is its path, as here.
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/services/T0001/B0002/s3cr3tW3bh00kT0k3n"

    def start(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def configure(
    *, webhook_url: str | None = None, recipients: str = "", **events: bool
) -> AlertSettings:
    return update_alert_settings(
        email_enabled=bool(recipients),
        email_recipients=recipients,
        webhook_enabled=webhook_url is not None,
        webhook_url=webhook_url,
        toggles={**ALL_EVENTS, **events},
        actor=None,
    )
