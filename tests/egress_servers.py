"""Real servers for the egress-policy tests, and a tripwire.

- `Listener`: a bare TCP socket standing in for an internal service (Redis, a metadata
  endpoint...). It counts every connection it accepts: "received nothing" means not one.
- `AnswerServer`: an HTTP(S) server that answers every request with a set status, headers and
  body (or a body made from the request's path), and keeps what each request carried. Over
  TLS its certificate (from a throwaway CA the client is told to trust through
  REQUESTS_CA_BUNDLE) names `localhost` and `partner.test` only, no address.
- `loopback_only()`: while it is active, any attempt to open a TCP connection to an address off
  this machine fails the test. Nothing should ever get that far; it is there so that a broken
  policy fails a test instead of sending a packet to 10.0.0.1 or 169.254.169.254.
- `dns_player(monkeypatch)`: replaces core/egress.py's resolver, the policy's one seam, to
  play DNS answers (a change between saving and calling, a rebinding).
"""

import datetime
import functools
import ipaddress
import json
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core import egress

CERT_NAMES = ("localhost", "partner.test")

# Issue #13's list of internal addresses an endpoint or a webhook must never reach.
ISSUE_LIST = [
    "https://127.0.0.1:6379",
    "https://169.254.169.254",
    "https://10.0.0.1:8443",
    "https://[::1]",
    "https://0x7f000001",
    "https://2130706433",
    "https://[::ffff:127.0.0.1]",
    "https://[fd00::1]",
    "https://metadata.google.internal",
    "https://localhost",
]
# The same places as a redirect would name them (http, ports).
REDIRECT_FORMS = [
    "http://127.0.0.1:6379",
    "http://169.254.169.254",
    "http://[::ffff:127.0.0.1]:8080",
    "http://0x7f000001",
    "http://localhost:8080",
    "http://metadata.google.internal",
]


class Listener:
    """A TCP listener that accepts, counts and closes connections."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@functools.cache
def tls_files() -> tuple[str, str, str]:
    """(CA certificate, server certificate, server key) paths, made once per test session."""
    directory = Path(tempfile.mkdtemp(prefix="cohortsync-egress-tls-"))
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cohortsync test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERT_NAMES[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in CERT_NAMES]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(paths[0]), str(paths[1]), str(paths[2])


class AnswerServer:
    """Answers every request with `status`, `headers` and a JSON or text `body` (a callable
    makes it from the request's path); keeps each request's headers and counts connections.
    `keep_alive` answers in HTTP/1.1, so a client may send several requests on a connection."""

    def __init__(
        self,
        status: int = 200,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        tls: bool = True,
        keep_alive: bool = False,
    ) -> None:
        self.status, self.headers, self.body = status, headers or {}, body
        self.requests: list[str] = []
        self.received: list[dict[str, str]] = []
        self.connections: list[tuple[str, int]] = []  # each one's client address
        answer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def setup(self) -> None:
                super().setup()
                # Not a set of addresses: the loopback reuses a closed connection's port at once.
                answer.connections.append(self.client_address)

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                answer.requests.append(f"{self.command} {self.path}")
                answer.received.append(dict(self.headers.items()))
                body = answer.body(self.path) if callable(answer.body) else answer.body
                payload = (
                    body.encode()
                    if isinstance(body, str)
                    else json.dumps(body if body is not None else {}).encode()
                )
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def server_bind(self) -> None:
                # HTTPServer's own does a reverse DNS lookup that can hang.
                TCPServer.server_bind(self)
                self.server_name, self.server_port = "localhost", self.server_address[1]

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls:
            _, cert, key = tls_files()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://localhost:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def servers(*made: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for server in made:
            server.stop()


@contextmanager
def loopback_only() -> Iterator[None]:
    """Fail loudly on any TCP connect to an address that is not this machine's loopback."""
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            ip = ipaddress.ip_address(str(address[0]).split("%")[0])
            mapped = getattr(ip, "ipv4_mapped", None)
            if not (ip.is_loopback or (mapped is not None and mapped.is_loopback)):
                raise AssertionError(f"the egress policy let a connection to {ip} through")
        return original(self, address)

    setattr(socket.socket, "connect", connect)  # noqa: B010 -- a method swapped for a while
    try:
        yield
    finally:
        setattr(socket.socket, "connect", original)  # noqa: B010


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def dns_player(monkeypatch: Any) -> Callable[[dict[str, list[str]]], None]:
    """play({"partner.test": ["127.0.0.1"]}): what core/egress.py's resolver answers for those
    names from now on; other names still go to the real resolver."""
    real = egress.resolve

    def play(answers: dict[str, list[str]]) -> None:
        def resolve(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
            if host not in answers:
                return real(host, port)
            return [
                (socket.AF_INET6, (a, port, 0, 0)) if ":" in a else (socket.AF_INET, (a, port))
                for a in answers[host]
            ]

        monkeypatch.setattr(egress, "resolve", resolve)

    return play


# Fixtures of the egress tests, registered in tests/conftest.py; a module opts in with
# `pytestmark = pytest.mark.usefixtures("egress_in_production")`.


@pytest.fixture
def egress_in_production(settings: Any) -> Iterator[None]:
    """Production settings for the egress policy, and no connection off the loopback."""
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = False
    settings.COHORTSYNC_EGRESS_ALLOW = []
    with loopback_only():
        yield


@pytest.fixture
def internal() -> Iterator[Listener]:
    """A service on the loopback that the policy must never reach."""
    listener = Listener()
    yield listener
    listener.stop()


@pytest.fixture
def dns(monkeypatch: Any) -> Callable[[dict[str, list[str]]], None]:
    return dns_player(monkeypatch)


@pytest.fixture
def trusted_tls(monkeypatch: Any) -> None:
    """requests trusts the test CA, as an operator's private CA through REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files()[0])
