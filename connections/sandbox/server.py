"""HTTP front of the partner sandbox: a threaded, keep-alive, standard-library server."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from connections.partners import PARTNERS
from connections.sandbox import control, relay
from connections.sandbox.state import JsonDict, SandboxState

MAX_BODY_BYTES = 10 * 1024 * 1024
IDLE_TIMEOUT_SECONDS = 120
QUERY_HEADER = ":query"
_ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - only compared against, never bound


def dispatch(
    state: SandboxState,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    peers: Sequence[str] = (),
) -> tuple[int, dict[str, str], JsonDict | bytes]:
    """Route one request to its simulator; partner traffic is counted per endpoint and status.

    `peers`: the private addresses of the other processes of a multi-process simulator, which
    must see what this request sets (connections/sandbox/relay.py); empty in a single process.
    """
    if peers:
        refused = relay.refusal(path, body)
        if refused is not None:
            return refused
    if control.owns(path):
        if peers:
            return relay.control_request(state, peers, method, path, headers, body)
        return control.handle(state, method, path, headers, body)
    simulator = next((p.simulator for p in PARTNERS.values() if p.simulator.owns(path)), None)
    if simulator is not None:
        response = simulator.handle(state, method, path, headers, body)
    else:
        response = (404, {}, {"message": "Not Found"})
    state.record_request(f"{method} {path}", response[0])
    status, extra, payload = response
    if peers and not isinstance(payload, bytes):
        relay.share_partner_write(peers, method, path, body, (status, extra, payload))
    return response


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a client opening dozens of connections at once (a
    # run with 64 requests in flight) would get resets instead of a queue.
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        state: SandboxState,
        *,
        listener: socket.socket | None = None,
        peers: Sequence[str] = (),
        internal: bool = False,
    ) -> None:
        self.state = state
        self.peers = tuple(peers)
        # A multi-process simulator's private listener: its connections are its siblings'
        # relays, not clients', and are not counted.
        self.internal = internal
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler, bind_and_activate=listener is None)
        if listener is not None:
            # One of a multi-process simulator's sockets, bound and listening before the fork.
            self.socket.close()
            self.socket = listener
            self.server_address = listener.getsockname()

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can hang for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(sock)

    def close_open_connections(self) -> None:
        """Wake handler threads parked on idle keep-alive connections so they exit."""
        with self._open_lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this, a keep-alive client's second request waits ~40 ms on delayed ACK.
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_SECONDS
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)
        if not self.server.internal:
            self.server.state.record_connection()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send(411, {}, {"message": "Content-Length is required"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send(400, {}, {"message": "Invalid Content-Length"})
            return
        if length > MAX_BODY_BYTES:
            # The body stays unread, so the connection cannot be reused.
            self.close_connection = True
            self._send(413, {}, {"message": "Request body too large"})
            return
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        target = urlsplit(self.path)
        path = target.path
        # The query string, for the simulators that read one (Amplitude's propKeys), under a
        # name no real header can have.
        headers[QUERY_HEADER] = target.query
        try:
            status, extra, payload = dispatch(
                self.server.state, self.command, path, headers, body, self.server.peers
            )
        except Exception:
            traceback.print_exc(file=sys.stderr)
            status, extra, payload = 500, {}, {"message": "Internal sandbox error"}
        self._send(status, extra, payload)

    def _send(self, status: int, extra: Mapping[str, str], payload: JsonDict | bytes) -> None:
        # A simulator may answer a file (Amplitude's cohort CSV): bytes go out as they are, with
        # the Content-Type its headers give.
        raw = isinstance(payload, bytes)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        if not raw or "Content-Type" not in extra:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class SandboxServer:
    """The Braze + AppsFlyer simulator on a real socket.

    `port=0` picks a free port; read it back from `port` or `url`. Use `start()`/`stop()` (or a
    `with` block) to serve from a daemon thread, or `serve_forever()` in a foreground process.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state: SandboxState | None = None,
        *,
        listener: socket.socket | None = None,
        peers: Sequence[str] = (),
        internal: bool = False,
    ) -> None:
        self.state = state if state is not None else SandboxState()
        self._httpd = _HTTPServer(
            (host, port), self.state, listener=listener, peers=peers, internal=internal
        )
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._closed = False
        self._stop_requested = False

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.host
        if host in (_ALL_INTERFACES, ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    def start(self) -> SandboxServer:
        with self._lifecycle:
            if self._closed:
                raise RuntimeError("SandboxServer was stopped; create a new one")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._httpd.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name=f"partner-sandbox-{self.port}",
                    daemon=True,
                )
                self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask `serve_forever()` to return. Only sets a flag, so it is safe in a signal handler."""
        self._stop_requested = True

    def serve_forever(self) -> None:
        """Serve until `stop()` or `request_stop()` is called, e.g. from a signal handler."""
        self.start()
        try:
            while not self._stop_requested:
                time.sleep(0.2)
        finally:
            self.stop()

    def stop(self) -> None:
        self._stop_requested = True
        with self._lifecycle:
            if self._closed:
                return
            self._closed = True
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join()
            self._httpd.close_open_connections()
            self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
