"""The egress policy (core/egress.py) applied to requests: a session whose every TCP connection
is made to an address the policy checked at that moment (so DNS cannot change it between check
and use), that follows no redirect and uses no proxy from the environment. The same connection
classes serve core/egress_client.py; they send a request's header block and bytes body in one
system call (_OneSend)."""

import ipaddress
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from core import egress


def _connect(conn: HTTPConnection) -> socket.socket:
    """Resolve the host, check every address, connect to a checked one. Raises EgressRefused
    before any packet leaves when one address is refused: a name that answers both a public and
    a private address is exactly what a DNS rebinding looks like."""
    host = conn._dns_host.strip("[]").rstrip(".").lower()
    port = conn.port or 443
    addresses = egress.resolve(host, port)
    for _, sockaddr in addresses:
        egress.check_address(host, ipaddress.ip_address(sockaddr[0]))
    error: OSError | None = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            if conn.timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(conn.timeout)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            error = exc
            sock.close()
            continue
        sys.audit("http.client.connect", conn, conn.host, conn.port)
        return sock
    raise error or OSError(f"{host} resolved to no address")


def _new_conn(conn: HTTPConnection) -> socket.socket:
    # The same errors urllib3's own _new_conn raises, so requests reports them as it always did.
    try:
        return _connect(conn)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out.") from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc


class _OneSend(HTTPConnection):
    """A request whose body is bytes goes out with its header block in one send.

    urllib3 sends the header block, then the body: two system calls, each of which gives up the
    interpreter and must take it back. Under a run's 64 sending threads taking it back is a
    context switch or several; a bare client posting 75-object Braze batches at 64 threads
    spent 11 % less CPU a request (346 against 390 µs) and switched 5.0 times a request instead
    of 6.5 with one send. Bodies of any other kind (a file, a generator, chunked) are sent as
    urllib3 sends them."""

    _held: bytes | None = None
    _body_follows = False

    def request(
        self, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any
    ) -> None:
        self._body_follows = (
            isinstance(body, bytes | bytearray) and len(body) > 0 and not kwargs.get("chunked")
        )
        try:
            super().request(method, url, body=body, headers=headers, **kwargs)
        except BaseException:
            self._held = None  # the request failed: nothing of it goes out now
            raise
        finally:
            self._body_follows = False
        if self._held is not None:  # no body went after all: the header block alone
            held, self._held = self._held, None
            super().send(held)

    def send(self, data: Any) -> None:
        if self._body_follows:
            if self._held is None:
                self._held = bytes(data)  # the header block, held for the body
                return
            data, self._held, self._body_follows = self._held + bytes(data), None, False
        super().send(data)


class _CheckedHTTPConnection(_OneSend):
    def _new_conn(self) -> socket.socket:
        return _new_conn(self)


class _CheckedHTTPSConnection(_OneSend, HTTPSConnection):
    # Only the socket changes: urllib3 then wraps it in TLS with server_hostname = the URL's
    # host, so SNI and certificate verification use the name, not the address.
    def _new_conn(self) -> socket.socket:
        return _new_conn(self)


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


# The pool classes of a urllib3 PoolManager whose every connection obeys the policy: the
# requests adapter below and core/egress_client.py's client both use them.
CHECKED_POOLS: dict[str, type[HTTPConnectionPool]] = {
    "http": _CheckedHTTPPool,
    "https": _CheckedHTTPSPool,
}


def named_ca_bundle() -> str | None:
    """The CA bundle REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE names, as requests reads them; None
    when neither does. Read where a session or client is made, never per request."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


class EgressAdapter(HTTPAdapter):
    """A requests adapter whose every connection obeys the policy."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(CHECKED_POOLS)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        egress.check_url(request.url or "")
        # No proxies: through one, the address connected to would be the proxy's, and the
        # partner's would go unchecked.
        return super().send(request, stream, timeout, verify, cert, proxies=None)


def protect(session: requests.Session) -> requests.Session:
    """Make `session` obey the policy (idempotent); returns it. Its callers pass
    allow_redirects=False; a redirect they followed would still be checked like any request.

    The session reads nothing from the environment per request (`trust_env` off): proxies
    are not used anyway, and a ~/.netrc must never add credentials to a partner call. That
    lookup also cost each request about 0.2 ms of CPU, a few % of a full sync's worker (measured
    with timeit: merge_environment_settings 228 µs with it, 14 µs without). A CA bundle named
    by REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, as requests reads them, still applies: once, here."""
    for prefix in ("https://", "http://"):
        if not isinstance(session.adapters.get(prefix), EgressAdapter):
            session.mount(prefix, EgressAdapter())
    if session.trust_env:
        session.trust_env = False
        bundle = named_ca_bundle()
        if bundle and session.verify is True:
            session.verify = bundle
    return session


class _Session(requests.Session):
    def get_redirect_target(self, resp: requests.Response) -> str | None:
        # A 3xx is the answer, never a place to go, even when a caller forgets to say so.
        # (max_redirects = 0 would not do: requests then raises even with allow_redirects=False.)
        return None


def session() -> requests.Session:
    """A new requests session that obeys the policy and never follows a redirect."""
    return protect(_Session())
